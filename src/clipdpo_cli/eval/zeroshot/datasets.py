"""The paper's nine zero-shot datasets (Table 3), each read from its usual distributed layout the way
torchvision's dataset class for it does (same files, same label order), without downloading anything; their
MATLAB files through scipy.io.loadmat. See docs/zeroshot.md for the layouts. Each reader returns a
labelled.LabelledSet; Flowers-102 ships no class names (they come from a package or --classnames, see
resources.py). The generic readers (ImageFolder, JSONL) are labelled.py's, importable from here too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from clipdpo_cli.eval.zeroshot.labelled import (  # noqa: F401  (read_jsonl_set: importable from here too)
    DatasetSpec,
    LabelledSet,
    class_dirs,
    images_under,
    locate,
    make_set,
    read_image_folder,
    read_jsonl_set,
    read_lines,
    split_camel,
    underscores,
)
from clipdpo_cli.io.errors import InputError


def _load_mat(path: Path) -> dict[str, Any]:
    """The variables of a MATLAB file, read as torchvision reads them (scipy.io.loadmat, squeeze_me=True)."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        return loadmat(str(path), squeeze_me=True)
    except FileNotFoundError:
        raise InputError(f"file not found: {path}") from None
    except NotImplementedError:  # scipy's answer to MAT 7.3 (HDF5) files
        raise InputError(f"{path}: MAT 7.3 (HDF5) files are not supported; save it with -v7 or -v6") from None
    except (MatReadError, ValueError, TypeError, OSError) as exc:
        raise InputError(f"{path}: not a readable MAT file ({exc})") from None


def _mat_var(mat: dict[str, Any], name: str, path: Path) -> list[Any]:
    """Variable `name` of a loaded MAT file as a list (a squeezed one-element array counts as one)."""
    if name not in mat or name.startswith("__"):
        found = ", ".join(sorted(k for k in mat if not k.startswith("__"))) or "none"
        raise InputError(f"{path}: no variable '{name}' (found: {found})")
    value = mat[name]
    if getattr(value, "ndim", 0) == 0:  # squeeze_me made one element a scalar, a str or a 0-d record
        return [value[()] if hasattr(value, "shape") else value]
    return list(value)


CARS_LAYOUT = (
    "stanford_cars/{devkit/cars_meta.mat, devkit/cars_train_annos.mat, cars_train/, cars_test/, "
    "cars_test_annos_withlabels.mat}"
)


def read_stanford_cars(root: str, split: str) -> LabelledSet:
    base = locate(root, "stanford_cars", "devkit/cars_meta.mat", "StanfordCars", CARS_LAYOUT)
    if split == "train":
        annos, images = base / "devkit" / "cars_train_annos.mat", base / "cars_train"
    else:
        annos, images = base / "cars_test_annos_withlabels.mat", base / "cars_test"
    meta_path = base / "devkit" / "cars_meta.mat"
    classes = [str(c) for c in _mat_var(_load_mat(meta_path), "class_names", meta_path)]
    samples = []
    for ann in _mat_var(_load_mat(annos), "annotations", annos):
        try:
            fname, label = str(ann["fname"]), int(ann["class"]) - 1  # 1-based in the file
        except (KeyError, IndexError, TypeError, ValueError):
            raise InputError(f"{annos}: annotations need 'fname' and 'class' fields") from None
        samples.append((str(images / fname), label))
    return make_set("cars", "StanfordCars", base, classes, samples, list(classes), "cars_meta.mat")


PETS_LAYOUT = "oxford-iiit-pet/{images/<Breed>_<n>.jpg, annotations/trainval.txt, annotations/test.txt}"


def read_oxford_pets(root: str, split: str) -> LabelledSet:
    base = locate(root, "oxford-iiit-pet", "annotations", "OxfordPets", PETS_LAYOUT)
    split = "trainval" if split == "train" else split
    names: dict[int, str] = {}
    samples = []
    lists = [base / "annotations" / f"{split}.txt"]
    lists += [p for p in (base / "annotations" / "list.txt",) if p.exists()]
    for i, path in enumerate(lists):
        for line in read_lines(path):
            if not line.strip() or line.startswith("#"):
                continue
            image_id, label_text = line.split()[:2]
            label = int(label_text) - 1  # 1-based CLASS-ID in the file
            names.setdefault(label, image_id.rsplit("_", 1)[0])
            if i == 0:
                samples.append((str(base / "images" / f"{image_id}.jpg"), label))
    n = max(names) + 1
    raw = [names.get(i, f"class {i + 1}") for i in range(n)]
    readable = [" ".join(part.title() for part in r.split("_")) for r in raw]  # as torchvision does
    return make_set("pets", "OxfordPets", base, raw, samples, readable, "image file names")


FLOWERS_LAYOUT = "flowers-102/{jpg/image_00001.jpg..., imagelabels.mat, setid.mat}"


def read_oxford_flowers(root: str, split: str) -> LabelledSet:
    base = locate(root, "flowers-102", "imagelabels.mat", "OxfordFlowers", FLOWERS_LAYOUT)
    split_var = {"train": "trnid", "val": "valid", "test": "tstid"}.get(split)
    if split_var is None:
        raise InputError(f"OxfordFlowers: --split must be train, val or test, not '{split}'")
    setid_path, labels_path = base / "setid.mat", base / "imagelabels.mat"
    image_ids = [int(i) for i in _mat_var(_load_mat(setid_path), split_var, setid_path)]
    labels = [int(v) - 1 for v in _mat_var(_load_mat(labels_path), "labels", labels_path)]  # 1-based
    samples = [(str(base / "jpg" / f"image_{i:05d}.jpg"), labels[i - 1]) for i in image_ids]
    classes = [str(i + 1) for i in range(max(102, max(labels) + 1))]
    return make_set("flowers", "OxfordFlowers", base, classes, samples, None, "")


IMAGENET_LAYOUT = "imagenet/val/<wnid>/*.JPEG (1000 WordNet-id folders, e.g. n01440764; train/ likewise)"


def read_imagenet(root: str, split: str) -> LabelledSet:
    folder = "train" if split == "train" else "val"
    base = locate(root, "imagenet", folder, "ImageNet", IMAGENET_LAYOUT)
    data = read_image_folder(str(base / folder), "imagenet", keep_empty=True)
    readable = None
    mapping = base / "LOC_synset_mapping.txt"  # "n01440764 tench, Tinca tinca" (Kaggle distribution)
    if mapping.exists():
        names = dict(line.split(" ", 1) for line in read_lines(mapping) if " " in line)
        readable = [names.get(w, w).split(",")[0].strip() for w in data.classes]
    return make_set("imagenet", "Imagenet", base, data.classes, data.samples, readable,
                 "LOC_synset_mapping.txt" if readable else "", data.notes)  # fmt: skip


FOOD_LAYOUT = (
    "food-101/{images/<class>/<id>.jpg, meta/classes.txt, meta/labels.txt, meta/train.json, meta/test.json}"
)


def read_food101(root: str, split: str) -> LabelledSet:
    import json

    base = locate(root, "food-101", "meta/classes.txt", "Food-101", FOOD_LAYOUT)
    split_file = base / "meta" / f"{'train' if split == 'train' else 'test'}.json"
    try:
        with open(split_file, encoding="utf-8") as fh:
            metadata = json.load(fh)
    except FileNotFoundError:
        raise InputError(f"Food-101: {split_file} not found. Expected layout: {FOOD_LAYOUT}") from None
    ids = [line.strip() for line in read_lines(base / "meta" / "classes.txt") if line.strip()]
    # torchvision's label order is the sorted class ids of the split file; classes.txt lists the same
    # 101 ids, so sorting it gives the same order even when a split file lacks some classes.
    classes = sorted(ids)
    unknown = sorted(set(metadata) - set(classes))
    if unknown:
        raise InputError(f"Food-101: {split_file} has classes missing from meta/classes.txt: {unknown[:3]}")
    index = {c: i for i, c in enumerate(classes)}
    samples = [
        (str(base / "images" / f"{rel}.jpg"), index[c]) for c in sorted(metadata) for rel in metadata[c]
    ]
    labels_path = base / "meta" / "labels.txt"
    if labels_path.exists():
        texts = [line.strip() for line in read_lines(labels_path) if line.strip()]
        by_id = dict(zip(ids, texts, strict=False))
        readable, source = [by_id.get(c, underscores(c)) for c in classes], "meta/labels.txt"
    else:
        readable, source = [underscores(c) for c in classes], "meta/classes.txt"
    return make_set("food101", "Food-101", base, classes, samples, readable, source)


EUROSAT_LAYOUT = "eurosat/2750/<Class>/*.jpg (10 folders: AnnualCrop, Forest, ...)"


def read_eurosat(root: str, split: str) -> LabelledSet:
    base = locate(root, "eurosat", "2750", "EuroSAT", EUROSAT_LAYOUT)
    data = read_image_folder(str(base / "2750"), "eurosat", keep_empty=True)
    readable = [split_camel(c) for c in data.classes]
    notes = ["EuroSAT has no official test split: all images are used (see --limit)", *data.notes]
    return make_set("eurosat", "Eurosat", base / "2750", data.classes, data.samples, readable, "folder names",
                 notes)  # fmt: skip


CALTECH_LAYOUT = "caltech101/101_ObjectCategories/<category>/image_0001.jpg (BACKGROUND_Google is left out)"


def read_caltech101(root: str, split: str) -> LabelledSet:
    base = locate(root, "caltech101", "101_ObjectCategories", "Caltech-101", CALTECH_LAYOUT)
    data = read_image_folder(str(base / "101_ObjectCategories"), "caltech101", skip=("BACKGROUND_Google",),
                             keep_empty=True)  # fmt: skip
    notes = ["Caltech-101 has no official test split: all images of the 101 classes are used", *data.notes]
    return make_set("caltech101", "Caltech-101", base / "101_ObjectCategories", data.classes, data.samples,
                 [underscores(c) for c in data.classes], "folder names", notes)  # fmt: skip


UCF_LAYOUT = (
    "ucf101/{ucfTrainTestlist/classInd.txt, ucfTrainTestlist/testlist01.txt, "
    "UCF-101-midframes/<Class>/<video>.jpg} (one middle frame per video, named like the video)"
)


def read_ucf101(root: str, split: str) -> LabelledSet:
    base = locate(root, "ucf101", "ucfTrainTestlist/classInd.txt", "UCF-101", UCF_LAYOUT)
    entries = []
    for line in read_lines(base / "ucfTrainTestlist" / "classInd.txt"):
        if line.strip():
            index, name = line.split()[:2]
            entries.append((int(index), name))
    classes = [name for _, name in sorted(entries)]
    by_name = {c.lower(): i for i, c in enumerate(classes)}
    frames = base / "UCF-101-midframes"
    if not frames.is_dir():
        raise InputError(f"UCF-101: {frames} not found (extract the middle frame of each video there). "
                         f"Expected layout: {UCF_LAYOUT}")  # fmt: skip
    list_name = {"train": "trainlist01.txt", "test": "testlist01.txt"}.get(split)
    samples: list[tuple[str, int]] = []
    notes: list[str] = []
    if list_name and (base / "ucfTrainTestlist" / list_name).exists():
        missing = 0
        for line in read_lines(base / "ucfTrainTestlist" / list_name):
            if not line.strip():
                continue
            video = line.split()[0]
            folder, stem = video.split("/")[0], Path(video).stem
            image = next(
                (frames / folder / f"{stem}{ext}" for ext in (".jpg", ".png")
                 if (frames / folder / f"{stem}{ext}").exists()), None,
            )  # fmt: skip
            if image is None:
                missing += 1
                continue
            samples.append((str(image), by_name[folder.lower()]))
        if missing:
            notes.append(f"UCF-101: {missing} videos of {list_name} have no frame in {frames}")
    else:
        for folder in class_dirs(frames):
            if folder.lower() not in by_name:
                raise InputError(f"UCF-101: frame folder '{folder}' is not a class of classInd.txt")
            samples += [(p, by_name[folder.lower()]) for p in images_under(frames / folder)]
    if not samples:
        raise InputError(f"UCF-101: no frames found under {frames}. Expected layout: {UCF_LAYOUT}")
    return make_set("ucf101", "UCF-101", base, classes, samples, [split_camel(c) for c in classes],
                 "classInd.txt", notes)  # fmt: skip


SUN_LAYOUT = "SUN397/{ClassName.txt, a/abbey/sun_*.jpg, ...} (+ optional Testing_01.txt from Partitions.zip)"


def sun_readable(name: str) -> str:
    """'apartment_building/outdoor' -> 'apartment building outdoor'."""
    return " ".join(underscores(part) for part in name.split("/"))


def read_sun397(root: str, split: str) -> LabelledSet:
    base = locate(root, "SUN397", "ClassName.txt", "SUN397", SUN_LAYOUT)
    classes = [line[3:].strip() for line in read_lines(base / "ClassName.txt") if line.strip()]  # "/a/abbey"
    index = {c: i for i, c in enumerate(classes)}
    partition = base / ("Training_01.txt" if split == "train" else "Testing_01.txt")
    notes = []
    if partition.exists():
        paths = [base / line.strip().lstrip("/") for line in read_lines(partition) if line.strip()]
    else:
        paths = sorted(base.rglob("sun_*.jpg"))
        notes.append(f"SUN397: no {partition.name}: all images are used")
    samples = []
    for path in paths:
        cls = "/".join(path.relative_to(base).parts[1:-1])
        if cls not in index:
            raise InputError(f"SUN397: {path} is not in a class of ClassName.txt")
        samples.append((str(path), index[cls]))
    return make_set("sun397", "SUN397", base, classes, samples, [sun_readable(c) for c in classes],
                 "ClassName.txt", notes)  # fmt: skip


# The nine datasets of the paper's Table 3, in its column order.
DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec("cars", "StanfordCars", 196, "stanford_cars", read_stanford_cars, CARS_LAYOUT,
                ("stanfordcars", "stanford_cars"), "cars"),
    DatasetSpec("pets", "OxfordPets", 37, "oxford-iiit-pet", read_oxford_pets, PETS_LAYOUT,
                ("oxfordpets", "oxford-iiit-pet", "oxfordiiitpet"), "pets"),
    DatasetSpec("flowers", "OxfordFlowers", 102, "flowers-102", read_oxford_flowers, FLOWERS_LAYOUT,
                ("oxfordflowers", "flowers102", "flowers-102"), "flowers"),
    DatasetSpec("imagenet", "Imagenet", 1000, "imagenet", read_imagenet, IMAGENET_LAYOUT,
                ("imagenet1k", "ilsvrc2012"), "imagenet1k"),
    DatasetSpec("food101", "Food-101", 101, "food-101", read_food101, FOOD_LAYOUT, ("food",), "food101"),
    DatasetSpec("eurosat", "Eurosat", 10, "eurosat", read_eurosat, EUROSAT_LAYOUT, (), "eurosat"),
    DatasetSpec("caltech101", "Caltech-101", 101, "caltech101", read_caltech101, CALTECH_LAYOUT,
                ("caltech",), "caltech101", clip_benchmark_drop_first=True),
    DatasetSpec("ucf101", "UCF-101", 101, "ucf101", read_ucf101, UCF_LAYOUT, ("ucf",), None),
    DatasetSpec("sun397", "SUN397", 397, "SUN397", read_sun397, SUN_LAYOUT, ("sun",), "sun397"),
)  # fmt: skip


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def find_spec(name: str) -> DatasetSpec:
    """The dataset spec for a name or alias (case, '-', '_' ignored); UsageError listing the names."""
    from clipdpo_cli.io.errors import UsageError

    wanted = _norm(name)
    for spec in DATASETS:
        if wanted in {_norm(spec.key), _norm(spec.title), *(_norm(a) for a in spec.aliases)}:
            return spec
    names = ", ".join(s.key for s in DATASETS)
    raise UsageError(f"unknown dataset '{name}' (known: {names}, or 'all')")


def read_dataset(spec: DatasetSpec, root: str, split: str = "test") -> LabelledSet:
    """Read one of the nine from `root` (the folder holding its distributed layout, or the layout itself)."""
    data = spec.reader(root, split)
    if not data.samples:
        raise InputError(f"{spec.title}: no images found for split '{split}' under {data.root}")
    bad = [lbl for _, lbl in data.samples if not 0 <= lbl < data.n_classes]
    if bad:
        raise InputError(f"{spec.title}: label {bad[0]} is outside 0..{data.n_classes - 1}")
    return data
