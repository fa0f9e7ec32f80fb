"""COCO's ground-truth objects per image, as CHAIR's reference gathers them: the categories of the instance
annotations (instances_val2014.json) and the object words of the five human captions (captions_val2014.json),
each as its node word (the reference's `get_annotations`: segments, then captions)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import orjson

from clipdpo_cli.eval.chair.words import CocoWords
from clipdpo_cli.io.errors import InputError


def read_json(path: str, what: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = orjson.loads(fh.read())
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise InputError(f"{path}: not a COCO annotation file (no 'annotations' list)")
    return data


def default_captions(instances: str) -> str:
    """captions_X.json beside instances_X.json (the layout of COCO's annotations_trainval2014.zip)."""
    folder, name = os.path.split(instances)
    return os.path.join(folder, name.replace("instances_", "captions_", 1))


class CocoTruth:
    """Ground-truth node words of COCO images; `images` are the images of the instance file (id -> file)."""

    def __init__(self, instances: str, captions: str | None, words: CocoWords) -> None:
        data = read_json(instances, "COCO instance annotations (--coco-annotations)")
        if not isinstance(data.get("categories"), list):
            raise InputError(f"{instances}: not a COCO instances file (no 'categories')")
        self.words = words
        self.images: dict[int, str] = {im["id"]: im.get("file_name", "") for im in data.get("images", [])}
        names = {cat["id"]: cat["name"] for cat in data["categories"]}
        self.segments: dict[int, set[str]] = {}
        for ann in data["annotations"]:
            self.segments.setdefault(ann["image_id"], set()).add(words.category(names[ann["category_id"]]))
        self.captions: dict[int, list[str]] = {}
        if captions is not None:
            for ann in read_json(captions, "COCO captions (--coco-captions)")["annotations"]:
                self.captions.setdefault(ann["image_id"], []).append(ann["caption"])
        self._objects: dict[int, set[str]] = {}

    def objects(self, image_id: int) -> set[str]:
        """The image's ground-truth node words: its instance categories and its captions' objects."""
        found = self._objects.get(image_id)
        if found is None:
            found = set(self.segments.get(image_id, ()))
            for caption in self.captions.get(image_id, ()):
                found.update(self.words.caption_words(caption)[1])
            self._objects[image_id] = found
        return found

    def unknown(self, image_ids: Iterable[int]) -> list[int]:
        """The ids that are not images of the instance file."""
        return [i for i in image_ids if i not in self.images]
