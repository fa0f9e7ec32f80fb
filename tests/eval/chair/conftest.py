"""A small COCO: instance and caption annotations of three val2014 images, and their images."""

from __future__ import annotations

import json

import pytest

from tests.models.families.conftest import family_dir  # noqa: F401 - the shrunken family checkpoints

CATEGORIES = [
    (1, "person"),
    (18, "dog"),
    (62, "chair"),
    (70, "toilet"),
    (6, "bus"),
    (46, "wine glass"),
    (58, "hot dog"),
    (16, "bird"),
    (81, "sink"),
]
INSTANCES = {1: ["person", "dog", "dog"], 2: ["toilet"], 3: ["bus", "person"]}
CAPTIONS = {
    1: ["A man walking his dog on a leash."],
    2: ["A white toilet seat in a small bathroom."],
    3: ["Two buses parked next to a street sign."],
}


def coco_file_name(image_id: int) -> str:
    return f"COCO_val2014_{image_id:012d}.jpg"


@pytest.fixture(scope="session")
def tiny_coco(tmp_path_factory: pytest.TempPathFactory):
    """(annotations folder, images folder) of the three images (captions_val2014.json beside instances)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("coco")
    (root / "annotations").mkdir()
    (root / "val2014").mkdir()
    ids = {name: cid for cid, name in CATEGORIES}
    images = [{"id": i, "file_name": coco_file_name(i), "width": 32, "height": 24} for i in INSTANCES]
    annotations = [
        {"id": 100 * i + k, "image_id": i, "category_id": ids[name]}
        for i, names in INSTANCES.items()
        for k, name in enumerate(names)
    ]
    categories = [{"id": cid, "name": name, "supercategory": "x"} for cid, name in CATEGORIES]
    (root / "annotations" / "instances_val2014.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    caps = [
        {"id": 10 * i + k, "image_id": i, "caption": c}
        for i, cs in CAPTIONS.items()
        for k, c in enumerate(cs)
    ]
    (root / "annotations" / "captions_val2014.json").write_text(
        json.dumps({"images": images, "annotations": caps})
    )
    for i, color in zip(INSTANCES, ("red", "green", "blue"), strict=True):
        Image.new("RGB", (32 + 8 * i, 24), color).save(root / "val2014" / coco_file_name(i))
    return root / "annotations", root / "val2014"
