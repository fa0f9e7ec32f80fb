"""FAKE copies of the nine datasets' distributed layouts, for tests: right class counts and label files,
made-up class names (the real lists are not copied here), a handful of tiny images each.

Each builder returns the --data-root and what the reader must find: the classes in label order and the
expected (relative image path, label) samples.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any


def mat_value(value: Any) -> Any:
    """A Python value as MATLAB stores it: list of str -> cell array, list of dicts -> 1xN struct array,
    whole numbers 0..255 -> uint8 (as MATLAB saves small labels), other numbers -> double."""
    import numpy as np

    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        fields = list(value[0])
        array = np.zeros((1, len(value)), dtype=[(f, "O") for f in fields])
        for i, item in enumerate(value):
            array[0, i] = tuple(mat_value(item[f]) for f in fields)
        return array
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=object).reshape(1, -1)
    if isinstance(value, str):
        return value
    numbers = np.atleast_1d(np.asarray(value, dtype=float)).reshape(1, -1)
    if np.all((numbers >= 0) & (numbers < 256) & (numbers == np.round(numbers))):
        return numbers.astype(np.uint8)
    return numbers


def write_mat(path: str, variables: dict[str, Any], compress: bool = True) -> None:
    """Write `variables` (see mat_value) to a level-5 MAT file with scipy.io.savemat."""
    from scipy.io import savemat

    savemat(path, {name: mat_value(value) for name, value in variables.items()}, do_compression=compress)


def tiny_image_bytes(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


_IMAGE = None


def put_image(path: Path) -> None:
    global _IMAGE
    if _IMAGE is None:
        _IMAGE = tiny_image_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_IMAGE)


def fake_cars(root: Path) -> dict:
    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    names = [f"Maker{i:03d} Model{i} Sedan 2012" for i in range(1, 197)]
    write_mat(str(base / "devkit" / "cars_meta.mat"), {"class_names": names})
    test = [("00001.jpg", 1), ("00002.jpg", 196), ("00003.jpg", 50)]
    train = [("00001.jpg", 7), ("00002.jpg", 8)]
    for split, rows, mat in (
        ("cars_test", test, base / "cars_test_annos_withlabels.mat"),
        ("cars_train", train, base / "devkit" / "cars_train_annos.mat"),
    ):
        anns = [
            {"bbox_x1": 1, "bbox_y1": 2, "bbox_x2": 30, "bbox_y2": 40, "class": c, "fname": f}
            for f, c in rows
        ]
        write_mat(str(mat), {"annotations": anns}, compress=split == "cars_test")
        for f, _ in rows:
            put_image(base / split / f)
    return {
        "classes": names,
        "samples": [(f"cars_test/{f}", c - 1) for f, c in test],
        "train": [(f"cars_train/{f}", c - 1) for f, c in train],
    }


def fake_pets(root: Path) -> dict:
    base = root / "oxford-iiit-pet"
    raws = [f"{'Cat' if i < 12 else 'dog'}_breed_{chr(97 + i % 26)}{i}" for i in range(37)]
    test_lines, train_lines, samples = [], [], []
    for label, raw in enumerate(raws):
        image_id = f"{raw}_{label + 10}"
        test_lines.append(f"{image_id} {label + 1} {1 if label < 12 else 2} 1")
        train_lines.append(f"{raw}_{label + 500} {label + 1} 1 1")
        samples.append((f"images/{image_id}.jpg", label))
        put_image(base / "images" / f"{image_id}.jpg")
    (base / "annotations").mkdir(parents=True)
    (base / "annotations" / "test.txt").write_text("\n".join(reversed(test_lines)) + "\n")
    (base / "annotations" / "trainval.txt").write_text("\n".join(train_lines) + "\n")
    readable = [" ".join(p.title() for p in raw.split("_")) for raw in raws]
    return {"classes": raws, "readable": readable, "samples": list(reversed(samples))}


def fake_flowers(root: Path) -> dict:
    base = root / "flowers-102"
    base.mkdir(parents=True)
    labels = [1, 102, 5, 5, 17, 60, 2, 99]  # 1-based, image k has labels[k-1]
    write_mat(str(base / "imagelabels.mat"), {"labels": labels})
    write_mat(str(base / "setid.mat"), {"trnid": [1, 2], "valid": [3], "tstid": [8, 2, 6, 4]}, compress=False)
    for k in range(1, len(labels) + 1):
        put_image(base / "jpg" / f"image_{k:05d}.jpg")
    return {
        "n_classes": 102,
        "samples": [(f"jpg/image_{k:05d}.jpg", labels[k - 1] - 1) for k in (8, 2, 6, 4)],
    }


def fake_imagenet(root: Path) -> dict:
    base = root / "imagenet" / "val"
    wnids = [f"n{10000000 + 37 * i:08d}" for i in range(1000)]
    for w in wnids:
        (base / w).mkdir(parents=True)
    picks = [0, 7, 999]
    for i in picks:
        put_image(base / wnids[i] / f"ILSVRC2012_val_{i:08d}.JPEG")
    return {"classes": wnids, "samples": [(f"val/{wnids[i]}/ILSVRC2012_val_{i:08d}.JPEG", i) for i in picks]}


def fake_food(root: Path) -> dict:
    base = root / "food-101"
    ids = [f"dish_{i:03d}" for i in range(101)]
    (base / "meta").mkdir(parents=True)
    (base / "meta" / "classes.txt").write_text("\n".join(ids) + "\n")
    (base / "meta" / "labels.txt").write_text("\n".join(f"Dish number {i}" for i in range(101)) + "\n")
    test = {ids[100]: [f"{ids[100]}/1001"], ids[3]: [f"{ids[3]}/3001", f"{ids[3]}/3002"], ids[0]: []}
    (base / "meta" / "test.json").write_text(json.dumps(test))  # keys deliberately unsorted
    (base / "meta" / "train.json").write_text(json.dumps({ids[1]: [f"{ids[1]}/11"]}))
    for rels in test.values():
        for rel in rels:
            put_image(base / "images" / f"{rel}.jpg")
    samples = [
        (f"images/{ids[3]}/3001.jpg", 3),
        (f"images/{ids[3]}/3002.jpg", 3),
        (f"images/{ids[100]}/1001.jpg", 100),
    ]
    return {"classes": ids, "samples": samples}


EUROSAT_FAKE = [
    "ZuluLand", "AlphaCrop", "BravoForest", "CharlieRiverBank", "DeltaSea",
    "EchoRoad", "FoxtrotTown", "GolfPasture", "HotelIndustrialZone", "IndiaLake",
]  # fmt: skip


def fake_eurosat(root: Path) -> dict:
    base = root / "eurosat" / "2750"
    classes = sorted(EUROSAT_FAKE)
    samples = []
    for label, c in enumerate(classes):
        for k in (1, 2):
            put_image(base / c / f"{c}_{k}.jpg")
            samples.append((f"{c}/{c}_{k}.jpg", label))
    return {"classes": classes, "samples": samples}


def fake_caltech(root: Path) -> dict:
    base = root / "caltech101" / "101_ObjectCategories"
    names = ["Upper_one", "Upper_two"] + [f"thing_{i:03d}" for i in range(99)]
    for c in ["BACKGROUND_Google", *names]:
        put_image(base / c / "image_0001.jpg")
    classes = sorted(names)  # Python order: upper-case names first
    return {"classes": classes, "samples": [(f"{c}/image_0001.jpg", i) for i, c in enumerate(classes)]}


def fake_ucf(root: Path) -> dict:
    base = root / "ucf101"
    classes = [f"Action{i:03d}Move" for i in range(101)]
    order = list(range(101))
    lines = [f"{i + 1} {classes[i]}" for i in reversed(order)]  # classInd order is by index, not by line
    (base / "ucfTrainTestlist").mkdir(parents=True)
    (base / "ucfTrainTestlist" / "classInd.txt").write_text("\n".join(lines) + "\n")
    videos = [(classes[5], 5), (classes[100], 100), (classes[0], 0)]
    test_lines = [f"{c}/v_{c}_g01_c01.avi" for c, _ in videos] + [f"{classes[9]}/v_{classes[9]}_g02_c01.avi"]
    (base / "ucfTrainTestlist" / "testlist01.txt").write_text("\n".join(test_lines) + "\n")
    for c, _ in videos:
        put_image(base / "UCF-101-midframes" / c / f"v_{c}_g01_c01.jpg")
    return {
        "classes": classes,
        "samples": [(f"UCF-101-midframes/{c}/v_{c}_g01_c01.jpg", i) for c, i in videos],
        "missing": 1,
    }


def fake_sun(root: Path) -> dict:
    base = root / "SUN397"
    classes = []
    for i in range(397):
        letter = chr(97 + i % 26)
        classes.append(f"{letter}/{letter}place_{i}" + ("/indoor" if i % 50 == 0 else ""))
    classes.sort()
    base.mkdir(parents=True)
    (base / "ClassName.txt").write_text("\n".join(f"/{c}" for c in classes) + "\n")
    picks = [0, 1, 396]
    rel = [f"{classes[i]}/sun_fake{i:04d}.jpg" for i in picks]
    for r in rel:
        put_image(base / r)
    names = [c[2:] for c in classes]
    return {"classes": names, "samples": [(r, i) for r, i in zip(rel, picks, strict=True)]}


BUILDERS = {
    "cars": fake_cars,
    "pets": fake_pets,
    "flowers": fake_flowers,
    "imagenet": fake_imagenet,
    "food101": fake_food,
    "eurosat": fake_eurosat,
    "caltech101": fake_caltech,
    "ucf101": fake_ucf,
    "sun397": fake_sun,
}


def fake_clip_benchmark(root: Path, classnames: dict, templates: dict) -> Path:
    """A FAKE installed clip_benchmark package (only its two JSON data files); returns the sys.path entry."""
    pkg = root / "clip_benchmark"
    (pkg / "datasets").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('the fake clip_benchmark must not be imported')\n")
    (pkg / "datasets" / "en_classnames.json").write_text(json.dumps(classnames))
    (pkg / "datasets" / "en_zeroshot_classification_templates.json").write_text(json.dumps(templates))
    return root


def relative(samples: list[tuple[str, int]], root: str) -> list[tuple[str, int]]:
    return [(os.path.relpath(p, root).replace(os.sep, "/"), label) for p, label in samples]
