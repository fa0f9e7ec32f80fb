"""Parity of the nine dataset readers with torchvision.datasets on the same fake files.

Each reader must find the samples (image, label), in the same order, and the class names that torchvision's
own class for that dataset reads from the same layout. Nothing is downloaded: torchvision is built with
download=False on files laid out where it expects them; only Flowers-102's md5 check of the two .mat files
is replaced by an existence check (the fakes are not the real files). Where torchvision's order is the
file system's (SUN397's rglob), samples are compared sorted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipdpo_cli.eval.zeroshot.datasets import find_spec, read_dataset
from tests.eval.zeroshot.zeroshot_fakes import BUILDERS, put_image

tvd = pytest.importorskip("torchvision.datasets")


def fake_imagenet_with_meta(root: Path) -> None:
    """ImageNet as torchvision leaves it after parsing its archives: val/<wnid>/*.JPEG plus meta.bin (and the
    Kaggle LOC_synset_mapping.txt clipdpo reads names from). torchvision needs an image in every class."""
    import torch

    base = root / "imagenet"
    wnids = [f"n{10000000 + 37 * i:08d}" for i in (4, 0, 2, 1, 3)]  # created unsorted
    names = {w: (f"thing {i}", f"alias {i}") for i, w in enumerate(wnids)}
    for i, w in enumerate(wnids):
        for k in range(i % 2 + 1):
            put_image(base / "val" / w / f"ILSVRC2012_val_{10 * i + k:08d}.JPEG")
    torch.save((names, []), base / "meta.bin")
    (base / "LOC_synset_mapping.txt").write_text("".join(f"{w} {', '.join(names[w])}\n" for w in wnids))


def fake_food_complete(root: Path) -> None:
    """Food-101 with every class in the split file, keys in the distributed (sorted) order."""
    base = root / "food-101"
    ids = [f"dish_{i:03d}" for i in range(101)]
    (base / "meta").mkdir(parents=True)
    (base / "meta" / "classes.txt").write_text("\n".join(ids) + "\n")
    test = {c: [f"{c}/{1000 * i + k}" for k in range(1 + i % 2)] for i, c in enumerate(ids)}
    (base / "meta" / "test.json").write_text(json.dumps(test))
    for rels in test.values():
        for rel in rels:
            put_image(base / "images" / f"{rel}.jpg")


def fake_ucf_with_videos(root: Path) -> list[str]:
    """UCF-101 videos (empty .avi files, as torchvision lists them) beside the middle frames clipdpo reads;
    testlist01.txt holds some of the videos. Returns torchvision's video list (its root's make_dataset)."""
    base = root / "ucf101"
    classes = [f"Action{i:03d}Move" for i in range(101)]
    (base / "ucfTrainTestlist").mkdir(parents=True)
    (base / "ucfTrainTestlist" / "classInd.txt").write_text(
        "".join(f"{i + 1} {c}\n" for i, c in enumerate(classes))
    )
    test, videos = [], []
    for i, c in enumerate(classes):
        for g in (1, 2):
            stem = f"v_{c}_g{g:02d}_c01"
            videos.append((c, stem))
            (base / "UCF-101" / c).mkdir(parents=True, exist_ok=True)
            (base / "UCF-101" / c / f"{stem}.avi").write_bytes(b"")
            put_image(base / "UCF-101-midframes" / c / f"{stem}.jpg")
            if g == 1 or i % 3 == 0:
                test.append(f"{c}/{stem}.avi")
    (base / "ucfTrainTestlist" / "testlist01.txt").write_text("\n".join(test) + "\n")
    return [str(base / "UCF-101" / c / f"{stem}.avi") for c, stem in videos]


@pytest.fixture(scope="module")
def parity_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    for key in ("cars", "pets", "flowers", "eurosat", "caltech101", "sun397"):
        BUILDERS[key](root)
    fake_imagenet_with_meta(root)
    fake_food_complete(root)
    return root, fake_ucf_with_videos(root)


def ours(key: str, root: Path, split: str = "test"):
    data = read_dataset(find_spec(key), str(root), split)
    return data, [(str(Path(p)), label) for p, label in data.samples]


def as_str(samples) -> list[tuple[str, int]]:
    return [(str(p), int(label)) for p, label in samples]


@pytest.mark.parametrize("split", ["train", "test"])
def test_stanford_cars(parity_root, split):
    root, _ = parity_root
    theirs = tvd.StanfordCars(str(root), split=split, download=False)
    data, samples = ours("cars", root, split)
    assert samples == as_str(theirs._samples)
    assert data.classes == theirs.classes == data.classnames


def test_oxford_pets(parity_root):
    root, _ = parity_root
    theirs = tvd.OxfordIIITPet(str(root), split="test", download=False)
    data, samples = ours("pets", root)
    assert samples == as_str(zip(theirs._images, theirs._labels, strict=True))
    assert data.classnames == theirs.classes


@pytest.mark.parametrize("split", ["train", "test"])  # the fake's 'valid' has one id: torchvision fails
def test_oxford_flowers(parity_root, monkeypatch, split):
    root, _ = parity_root
    flowers = tvd.Flowers102  # the md5 check of the real .mat files is the only step skipped
    monkeypatch.setattr(flowers, "_check_integrity", lambda self: (self._base_folder / "setid.mat").exists())
    theirs = flowers(str(root), split=split, download=False)
    data, samples = ours("flowers", root, split)
    assert samples == as_str(zip(theirs._image_files, theirs._labels, strict=True))
    assert data.n_classes == len(theirs.classes) == 102


def test_imagenet(parity_root):
    root, _ = parity_root
    theirs = tvd.ImageNet(str(root / "imagenet"), split="val")
    data, samples = ours("imagenet", root)
    assert samples == as_str(theirs.samples)
    assert data.classes == theirs.wnids
    assert data.classnames == [names[0] for names in theirs.classes]


def test_food101(parity_root):
    root, _ = parity_root
    theirs = tvd.Food101(str(root), split="test", download=False)
    data, samples = ours("food101", root)
    assert samples == as_str(zip(theirs._image_files, theirs._labels, strict=True))
    assert data.classes == theirs.classes


def test_eurosat(parity_root):
    root, _ = parity_root
    theirs = tvd.EuroSAT(str(root), download=False)
    data, samples = ours("eurosat", root)
    assert samples == as_str(theirs.samples)
    assert data.classes == theirs.classes


def test_caltech101(parity_root):
    root, _ = parity_root
    theirs = tvd.Caltech101(str(root), target_type="category", download=False)
    folder = Path(theirs.root) / "101_ObjectCategories"
    expected = [
        (str(folder / theirs.categories[y] / f"image_{i:04d}.jpg"), y)
        for i, y in zip(theirs.index, theirs.y, strict=True)
    ]  # the path torchvision's __getitem__ opens
    data, samples = ours("caltech101", root)
    assert samples == expected
    assert data.classes == theirs.categories


def test_ucf101(parity_root):
    import torch

    root, videos = parity_root
    metadata = {"video_paths": videos, "video_pts": [torch.arange(1)] * len(videos),
                "video_fps": [25.0] * len(videos)}  # fmt: skip  # skips decoding the (empty) videos
    theirs = tvd.UCF101(str(root / "ucf101" / "UCF-101"), str(root / "ucf101" / "ucfTrainTestlist"),
                        frames_per_clip=1, train=False, _precomputed_metadata=metadata)  # fmt: skip
    expected = [theirs.samples[i] for i in theirs.indices]
    data, samples = ours("ucf101", root)
    frames = [
        (p.replace("UCF-101-midframes", "UCF-101").removesuffix(".jpg") + ".avi", y) for p, y in samples
    ]
    assert frames == as_str(expected) and len(expected) == 101 + 34
    assert data.classes == theirs.classes


def test_sun397(parity_root):
    root, _ = parity_root
    theirs = tvd.SUN397(str(root), download=False)
    data, samples = ours("sun397", root)
    assert sorted(samples) == sorted(as_str(zip(theirs._image_files, theirs._labels, strict=True)))
    assert data.classes == theirs.classes
