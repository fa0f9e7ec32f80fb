"""A small POPE folder (the official file format) with its COCO-named images, and the shrunken families."""

from __future__ import annotations

import json

import pytest

from tests.models.families.conftest import family_dir  # noqa: F401 - the shrunken family checkpoints

# (question_id, image, object, label) per set: two images, the sets asking about different objects
QUESTIONS = {
    "random": [(1, 1, "dog", "yes"), (2, 1, "car", "no"), (3, 2, "cat", "yes"), (4, 2, "kite", "no")],
    "popular": [(1, 1, "dog", "yes"), (2, 1, "person", "no"), (3, 2, "cat", "yes"), (4, 2, "chair", "no")],
    "adversarial": [(1, 1, "dog", "yes"), (2, 1, "leash", "no"), (3, 2, "cat", "yes"), (4, 2, "mouse", "no")],
}


def image_name(i: int) -> str:
    return f"COCO_val2014_{i:012d}.jpg"


@pytest.fixture(scope="session")
def tiny_pope(tmp_path_factory: pytest.TempPathFactory):
    """(pope root, image root)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("pope")
    (root / "val2014").mkdir()
    for i, color in ((1, "red"), (2, "blue")):
        Image.new("RGB", (40 + 8 * i, 32), color).save(root / "val2014" / image_name(i))
    for split, rows in QUESTIONS.items():
        lines = [
            json.dumps(
                {
                    "question_id": q,
                    "image": image_name(i),
                    "text": f"Is there a {obj} in the image?",
                    "label": label,
                }
            )
            for q, i, obj, label in rows
        ]
        (root / f"coco_pope_{split}.json").write_text("\n".join(lines) + "\n")
    return root, root / "val2014"
