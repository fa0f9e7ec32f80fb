"""The AMBER benchmark folder: annotations, word association, safe words and query files.

Expected layout (as in the official repository plus the separately distributed images)::

    ROOT/data/annotations.json   15,220 entries, entry i has id i+1
    ROOT/data/relation.json      word -> associated words (keys + values: the 418-word vocabulary)
    ROOT/data/safe_words.txt     9 words never counted as hallucinations
    ROOT/data/query/query_*.json the prompts {"id", "image", "query"}
    ROOT/image/AMBER_N.jpg       the 1,004 images

The files may also sit directly in ROOT (no data/ level); images may be in ROOT/images/ instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.io.errors import InputError, UsageError

TASKS = ("all", "generative", "discriminative", "existence", "attribute", "relation")

# The query file the official repository pairs with each task (its README's table).
QUERY_FILES = {
    "all": "query_all.json",
    "generative": "query_generative.json",
    "discriminative": "query_discriminative.json",
    "existence": "query_discriminative-existence.json",
    "attribute": "query_discriminative-attribute.json",
    "relation": "query_discriminative-relation.json",
}

GENERATIVE = "generative"
# Annotation type -> discriminative group. The official scorer sends every other type (both
# 'discriminative-relation' and 'relation' occur) to the relation group.
TYPE_GROUPS = {
    "discriminative-hallucination": "existence",
    "discriminative-attribute-state": "state",
    "discriminative-attribute-number": "number",
    "discriminative-attribute-action": "action",
}
ATTRIBUTE_GROUPS = ("state", "number", "action")


def group_of(kind: str) -> str:
    """The discriminative group of an annotation type ('relation' for any type not listed)."""
    return TYPE_GROUPS.get(kind, "relation")


def task_of(kind: str) -> str:
    """The task an annotation type belongs to: generative, existence, attribute or relation."""
    if kind == GENERATIVE:
        return "generative"
    group = group_of(kind)
    return "attribute" if group in ATTRIBUTE_GROUPS else group


def in_task(kind: str, task: str) -> bool:
    """Whether an annotation of type `kind` is part of `task`."""
    if task == "all":
        return True
    if task == "discriminative":
        return kind != GENERATIVE
    return task_of(kind) == task


@dataclass
class AmberData:
    """The benchmark's annotation files, loaded once."""

    root: str
    data_dir: str
    annotations: dict[int, dict[str, Any]]
    association: dict[str, list[str]]
    safe_words: list[str]
    vocabulary: list[str] = field(default_factory=list)  # keys and values of relation.json, in order

    def __post_init__(self) -> None:
        if not self.vocabulary:
            words: list[str] = []
            for key, values in self.association.items():
                words.append(key)
                words.extend(values)
            self.vocabulary = words
        self.vocabulary_set = frozenset(self.vocabulary)

    def ids(self, task: str) -> list[int]:
        """Annotation ids of a task, ascending."""
        return sorted(i for i, a in self.annotations.items() if in_task(a["type"], task))

    def query_path(self, task: str) -> str:
        return os.path.join(self.data_dir, "query", QUERY_FILES[task])

    def queries(self, task: str) -> list[dict[str, Any]]:
        """The prompts of a task from its official query file, [{"id", "image", "query"}] by id."""
        if task not in QUERY_FILES:
            raise UsageError(f"--task must be one of {', '.join(TASKS)}, got '{task}'")
        path = self.query_path(task)
        items = _load_json(path, "query file")
        if not isinstance(items, list):
            raise InputError(f"{path}: expected a JSON list of queries")
        for item in items:
            if not isinstance(item, dict) or not {"id", "image", "query"} <= item.keys():
                raise InputError(f"{path}: each query needs id, image and query, got {item!r:.120}")
        return sorted(items, key=lambda q: q["id"])


def _load_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise InputError(f"AMBER {what} not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read AMBER {what} {path}: {exc}") from None


def find_data_dir(root: str) -> str:
    """ROOT/data when it holds annotations.json, else ROOT itself when it does."""
    if not os.path.isdir(root):
        raise InputError(f"--amber-root: folder not found: {root}")
    for candidate in (os.path.join(root, "data"), root):
        if os.path.isfile(os.path.join(candidate, "annotations.json")):
            return candidate
    raise InputError(
        f"--amber-root {root}: no data/annotations.json (expected the AMBER repository layout: "
        "data/annotations.json, data/relation.json, data/safe_words.txt, data/query/, image/)"
    )


def find_image_dir(root: str) -> str:
    """ROOT/image (the official archive's folder name) or ROOT/images."""
    for name in ("image", "images"):
        path = os.path.join(root, name)
        if os.path.isdir(path):
            return path
    return os.path.join(root, "image")


def load_amber(root: str) -> AmberData:
    """Load the annotation files of an AMBER folder (see the module docstring for the layout)."""
    data_dir = find_data_dir(root)
    raw = _load_json(os.path.join(data_dir, "annotations.json"), "annotations")
    association = _load_json(os.path.join(data_dir, "relation.json"), "word association file")
    safe_path = os.path.join(data_dir, "safe_words.txt")
    try:
        with open(safe_path, encoding="utf-8") as fh:
            # As the official scorer: each line up to its newline (a final line without one counts too).
            safe_words = [line.split("\n")[0] for line in fh]
    except FileNotFoundError:
        raise InputError(f"AMBER safe words file not found: {safe_path}") from None
    if not isinstance(raw, list) or not isinstance(association, dict):
        raise InputError(f"{data_dir}: annotations.json must be a list and relation.json an object")
    annotations: dict[int, dict[str, Any]] = {}
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), int) or "type" not in entry:
            raise InputError(f"{data_dir}/annotations.json: bad entry {entry!r:.120}")
        annotations[entry["id"]] = entry
    return AmberData(root, data_dir, annotations, association, safe_words)
