"""Labelled image sets: what a reader returns (LabelledSet: raw class ids in label order, (image, label)
samples, readable class names when the dataset's own files hold them), the spec of a named dataset
(DatasetSpec), the generic readers (ImageFolder, JSONL {image, label}) and the file helpers the nine named
datasets' readers (datasets.py) share.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.images import IMAGE_EXTENSIONS


@dataclass
class LabelledSet:
    """A labelled evaluation set. Sample images are paths; `root` is what cache keys are relative to."""

    name: str
    title: str
    root: str
    classes: list[str]
    samples: list[tuple[str, int]]
    classnames: list[str] | None = None
    classnames_source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def key(self, image: str) -> str:
        """The image path relative to the set's root (portable cache key)."""
        try:
            return Path(image).relative_to(self.root).as_posix()
        except ValueError:
            return Path(image).as_posix()


@dataclass(frozen=True)
class DatasetSpec:
    """One of the paper's nine datasets: where it lives under --data-root and how to read it."""

    key: str
    title: str
    n_classes: int
    folder: str
    reader: Callable[[str, str], LabelledSet]
    layout: str
    aliases: tuple[str, ...] = ()
    clip_benchmark: str | None = None  # key in clip-benchmark's class-name / template files
    clip_benchmark_drop_first: bool = False  # its list has an extra first class (Caltech's background)


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def images_under(folder: Path) -> list[str]:
    """Image files under `folder`, recursively, in sorted order."""
    found: list[str] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(root, f) for f in sorted(files) if is_image(f))
    return found


def class_dirs(folder: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    except FileNotFoundError:
        raise InputError(f"folder not found: {folder}") from None


def read_lines(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return [line.rstrip("\r\n") for line in fh]
    except FileNotFoundError:
        raise InputError(f"file not found: {path}") from None


def split_camel(name: str) -> str:
    """'ApplyEyeMakeup' -> 'Apply Eye Makeup', 'SeaLake' -> 'Sea Lake' (used for folder-named classes)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    return spaced.replace("_", " ").strip()


def underscores(name: str) -> str:
    return name.replace("_", " ").strip()


def locate(root: str, spec_folder: str, marker: str, title: str, layout: str) -> Path:
    """The dataset folder: ROOT/<folder> (torchvision's convention) or ROOT itself, holding `marker`."""
    base = Path(root)
    for candidate in (base / spec_folder, base):
        if (candidate / marker).exists():
            return candidate
    raise InputError(
        f"{title}: {base / spec_folder / marker} not found. Expected layout under --data-root: {layout}"
    )


def make_set(
    name: str,
    title: str,
    root: Path,
    classes: list[str],
    samples: list[tuple[str, int]],
    classnames: list[str] | None,
    source: str,
    notes: list[str] | None = None,
) -> LabelledSet:
    return LabelledSet(name, title, str(root), classes, samples, classnames, source, notes or [])


def read_image_folder(
    folder: str, name: str | None = None, skip: tuple[str, ...] = (), keep_empty: bool = False
) -> LabelledSet:
    """ImageFolder layout: one sub-folder per class (sorted = label order), images anywhere below it.

    A sub-folder without images is no class (it would only be a wrong candidate for every image: with
    few classes top-5 would be trivially 100%): it is left out, with one note naming them. `keep_empty`
    (the named benchmarks, whose class list is fixed) keeps them as classes, with a note too."""
    base = Path(folder)
    if not base.is_dir():
        raise InputError(f"image folder not found: {folder}")
    folders = [c for c in class_dirs(base) if c not in skip]
    if not folders:
        raise InputError(f"{folder}: no class sub-folders (expected FOLDER/<class>/<image>)")
    images = {c: images_under(base / c) for c in folders}
    empty = [c for c in folders if not images[c]]
    if len(empty) == len(folders):
        raise InputError(f"{folder}: no images in its class folders")
    classes = folders if keep_empty else [c for c in folders if images[c]]
    samples = [(path, label) for label, c in enumerate(classes) for path in images[c]]
    title = name or base.name
    notes = [empty_classes_note(title, empty, keep_empty)] if empty else []
    return make_set(title, title, base, classes, samples, [underscores(c) for c in classes], "folder names",
                 notes)  # fmt: skip


def empty_classes_note(title: str, empty: list[str], kept: bool = False, shown: int = 20) -> str:
    """The one note on the class folders of `title` that hold no image."""
    names = ", ".join(empty[:shown]) + (f", ... ({len(empty) - shown} more)" if len(empty) > shown else "")
    if kept:
        return f"{title}: {len(empty)} class folder(s) without images, kept (benchmark classes): {names}"
    return f"{title}: {len(empty)} empty class folder(s) left out (no images, so not classes): {names}"


def read_jsonl_set(path: str, image_root: str | None = None, name: str | None = None) -> LabelledSet:
    """JSONL lines {"image": PATH, "label": NAME-or-INDEX}; relative images are under `image_root` (else
    $CLIPDPO_IMAGE_ROOT, else the file's folder). String labels give the classes (sorted); integer labels
    need --classnames."""
    from clipdpo_cli.io.images import image_root as shared_root
    from clipdpo_cli.io.jsonl import read_jsonl

    folder, _ = shared_root(image_root)
    root = Path(folder) if folder else Path(path).resolve().parent
    rows: list[tuple[str, Any]] = []
    for lineno, record in enumerate(read_jsonl(path), 1):
        image, label = record.get("image"), record.get("label")
        if not isinstance(image, str):
            raise InputError(f"{path}: line {lineno}: field 'image' must be a string")
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise InputError(f"{path}: line {lineno}: field 'label' must be a class name or an integer index")
        rows.append((image if os.path.isabs(image) else str(root / image), label))
    if not rows:
        raise InputError(f"{path}: no records")
    title = name or Path(path).name.split(".")[0]
    if all(isinstance(label, str) for _, label in rows):
        classes = sorted({label for _, label in rows})
        index = {c: i for i, c in enumerate(classes)}
        samples = [(img, index[label]) for img, label in rows]
        return make_set(title, title, root, classes, samples, list(classes), "labels in the JSONL")
    if not all(isinstance(label, int) for _, label in rows):
        raise InputError(f"{path}: labels must be all class names or all integer indices, not a mix")
    n = max(label for _, label in rows) + 1
    if min(label for _, label in rows) < 0:
        raise InputError(f"{path}: negative label index")
    return make_set(title, title, root, [str(i) for i in range(n)], rows, None, "")  # type: ignore[arg-type]
