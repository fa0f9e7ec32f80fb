"""Readable class names and prompt templates: user files, installed packages, or the dataset's own files.

Order of preference for class names: --classnames FILE; an installed package that ships them (open_clip for
ImageNet; the optional clip-benchmark package for most of the nine, read from its JSON files at run time,
never copied here); the dataset's own files (folder names, meta files); otherwise an error naming the file
to pass. Templates: --templates FILE; clip-benchmark's templates for the dataset; open_clip's ImageNet
templates; the generic templates shipped with clipdpo (data/zeroshot_templates.txt).

Templates are format strings with a `{c}` placeholder for the class name.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipdpo_cli.eval.zeroshot.datasets import DatasetSpec, LabelledSet
from clipdpo_cli.io.errors import InputError

CLIP_BENCHMARK_CLASSNAMES = "en_classnames.json"
CLIP_BENCHMARK_TEMPLATES = "en_zeroshot_classification_templates.json"
GENERIC_TEMPLATES = Path(__file__).resolve().parents[2] / "data" / "zeroshot_templates.txt"


@dataclass
class Prompts:
    classnames: list[str]
    classnames_source: str
    templates: list[str]
    templates_source: str


def fill(template: str, classname: str) -> str:
    """A template with its `{c}` placeholder replaced (plain replace: braces in names are safe)."""
    return template.replace("{c}", classname)


# ---------------------------------------------------------------------------------------------- files


def read_templates_file(path: str) -> list[str]:
    """One template per line with `{c}` (or `{}`) where the class name goes; blank and # lines ignored."""
    templates = []
    for lineno, line in enumerate(_lines(path), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        text = text.replace("{}", "{c}")
        if "{c}" not in text:
            raise InputError(
                f"{path}: line {lineno}: a template needs a {{c}} placeholder for the class name"
            )
        templates.append(text)
    if not templates:
        raise InputError(f"{path}: no templates")
    return templates


def read_classnames_file(path: str) -> list[str] | dict[str, str]:
    """Class names: a text file (one per line, in label order; or 'CLASS_ID<TAB>name' lines mapping the
    dataset's class ids, e.g. folder names, to readable names) or JSON (a list, or an object id -> name)."""
    if path.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise InputError(f"class names file not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: invalid JSON: {exc}") from None
        if isinstance(data, list) and all(isinstance(x, str) for x in data):
            return data
        if isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
            return {str(k): v for k, v in data.items()}
        raise InputError(f"{path}: expected a JSON list of names or an object mapping class ids to names")
    lines = [line for line in _lines(path) if line.strip()]
    if lines and all("\t" in line for line in lines):
        return dict((k.strip(), v.strip()) for k, v in (line.split("\t", 1) for line in lines))
    return [line.strip() for line in lines]


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().splitlines()
    except FileNotFoundError:
        raise InputError(f"file not found: {path}") from None


# ---------------------------------------------------------------------------------------------- packages


def clip_benchmark_file(filename: str) -> Path | None:
    """A data file of the installed clip-benchmark package (found without importing it), or None."""
    try:
        spec = importlib.util.find_spec("clip_benchmark")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "datasets" / filename
        if candidate.is_file():
            return candidate
    return None


def _clip_benchmark_entry(filename: str, key: str) -> tuple[list[str], str] | None:
    path = clip_benchmark_file(filename)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            entry = json.load(fh).get(key)
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    if isinstance(entry, list) and entry and all(isinstance(x, str) for x in entry):
        return entry, f"clip-benchmark ({path.name}: {key})"
    return None


def _open_clip_imagenet() -> tuple[list[str], list[str]] | None:
    try:
        from open_clip import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES
    except ImportError:
        return None
    return list(IMAGENET_CLASSNAMES), [t("{c}") for t in OPENAI_IMAGENET_TEMPLATES]


def generic_templates() -> list[str]:
    return read_templates_file(str(GENERIC_TEMPLATES))


# ---------------------------------------------------------------------------------------------- choice


def _from_user_file(data: LabelledSet, path: str) -> list[str]:
    names = read_classnames_file(path)
    if isinstance(names, dict):
        missing = [c for c in data.classes if c not in names]
        if missing:
            raise InputError(
                f"{path}: no name for {len(missing)} class id(s) of {data.title}, "
                f"e.g. {', '.join(missing[:3])}"
            )
        return [names[c] for c in data.classes]
    if len(names) != data.n_classes:
        raise InputError(
            f"{path}: {len(names)} class names for {data.title}, which has {data.n_classes} classes "
            f"(one name per line in label order: {', '.join(data.classes[:3])}, ...)"
        )
    return names


def _missing_names_error(data: LabelledSet, spec: DatasetSpec | None) -> InputError:
    hint = ""
    if spec is not None and spec.clip_benchmark:
        hint = (
            f", or install the optional clip-benchmark package (pip install clip-benchmark), whose "
            f"clip_benchmark/datasets/{CLIP_BENCHMARK_CLASSNAMES} has them under '{spec.clip_benchmark}'"
        )
    return InputError(
        f"{data.title}: its files hold no readable class names: pass --classnames FILE (a text file with "
        f"{data.n_classes} lines, one name per line in label order {data.classes[0]}, {data.classes[1]}, ...)"
        f"{hint}"
    )


def choose_prompts(
    data: LabelledSet,
    spec: DatasetSpec | None = None,
    classnames_file: str | None = None,
    templates_file: str | None = None,
) -> Prompts:
    """Class names and templates for `data`, from the best available source (see the module docstring)."""
    names: list[str] | None = None
    names_source = ""
    if classnames_file:
        names, names_source = _from_user_file(data, classnames_file), classnames_file
    imagenet = _open_clip_imagenet() if spec is not None and spec.key == "imagenet" else None
    if names is None and imagenet is not None and len(imagenet[0]) == data.n_classes:
        names, names_source = imagenet[0], "open_clip (IMAGENET_CLASSNAMES)"
    if names is None and spec is not None and spec.clip_benchmark:
        entry = _clip_benchmark_entry(CLIP_BENCHMARK_CLASSNAMES, spec.clip_benchmark)
        if entry is not None:
            listed = entry[0][1:] if spec.clip_benchmark_drop_first else entry[0]
            if len(listed) == data.n_classes:
                names, names_source = listed, entry[1]
    if names is None and data.classnames is not None:
        names, names_source = data.classnames, data.classnames_source
    if names is None:
        raise _missing_names_error(data, spec)

    templates: list[str] | None = None
    templates_source = ""
    if templates_file:
        templates, templates_source = read_templates_file(templates_file), templates_file
    if templates is None and spec is not None and spec.clip_benchmark:
        entry = _clip_benchmark_entry(CLIP_BENCHMARK_TEMPLATES, spec.clip_benchmark)
        if entry is not None:
            templates = [t for t in entry[0] if "{c}" in t] or None
            templates_source = entry[1] if templates else ""
    if templates is None and imagenet is not None:
        templates, templates_source = imagenet[1], "open_clip (OPENAI_IMAGENET_TEMPLATES)"
    if templates is None:
        templates, templates_source = generic_templates(), "clipdpo generic templates"
    return Prompts(list(names), names_source, templates, templates_source)


def describe(prompts: Prompts) -> dict[str, Any]:
    return {
        "classnames_source": prompts.classnames_source,
        "templates_source": prompts.templates_source,
        "n_templates": len(prompts.templates),
    }
