"""The official POPE COCO question files: POPE_ROOT/coco_pope_{random,popular,adversarial}.json.

Each file is JSON lines (despite its name), one question a line:
    {"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the image?",
     "label": "yes"}
3,000 questions a set in the published files (AoiDragon/POPE output/coco/; MIT).
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from clipdpo_cli.io.errors import InputError

SPLITS = ("random", "popular", "adversarial")
LABELS = ("yes", "no")


def split_file(root: str, split: str) -> str:
    return os.path.join(root, f"coco_pope_{split}.json")


def _parse(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise InputError(
            f"POPE question file not found: {path} (--pope-root is the folder of "
            "coco_pope_random.json, coco_pope_popular.json, coco_pope_adversarial.json)"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        if data.lstrip()[:1] == b"[":  # a JSON array is accepted too
            return orjson.loads(data)
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON: {exc}") from None


def load_split(root: str, split: str) -> list[dict[str, Any]]:
    """One set's questions in file order, checked: question_id (int, unique), image, text, label yes/no."""
    path = split_file(root, split)
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    for n, item in enumerate(_parse(path), 1):
        where = f"{path}: question {n}"
        if not isinstance(item, dict):
            raise InputError(f"{where}: expected an object, got {type(item).__name__}")
        qid = item.get("question_id")
        if not isinstance(qid, int) or isinstance(qid, bool):
            raise InputError(f"{where}: field 'question_id' must be an integer, got {qid!r}")
        if qid in seen:
            raise InputError(f"{where}: question_id {qid} appears twice")
        seen.add(qid)
        for field in ("image", "text"):
            if not isinstance(item.get(field), str):
                raise InputError(f"{where}: field '{field}' must be a string")
        if item.get("label") not in LABELS:
            raise InputError(f"{where}: field 'label' must be 'yes' or 'no', got {item.get('label')!r}")
        out.append(item)
    return out


def load_pope(root: str, splits: tuple[str, ...] = SPLITS) -> dict[str, list[dict[str, Any]]]:
    """{split: questions} for the sets asked for."""
    if not os.path.isdir(root):
        raise InputError(f"--pope-root is not a folder: {root}")
    return {split: load_split(root, split) for split in splits}


def query_id(split: str, question_id: int) -> str:
    """A question's record id: unique over the three sets (question ids restart at 1 in each)."""
    return f"{split}-{question_id}"
