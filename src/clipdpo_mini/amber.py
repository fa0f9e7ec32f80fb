"""The one writer of AMBER-layout folders (the official layout, as clipdpo_cli.eval.amber.data reads it):

    ROOT/data/annotations.json, relation.json, safe_words.txt, query/query_*.json
    ROOT/image/NAME ...

The miniature world's held-out folders (world.write_amber_split) and the tests' stand-in folder with
discriminative questions (tests/fixtures/tiny_amber.py) both write through it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# query file task (eval.amber.data.QUERY_FILES) -> does an annotation type belong to it
TASK_TYPES = {
    "generative": lambda kind: kind == "generative",
    "discriminative": lambda kind: kind != "generative",
    "existence": lambda kind: kind == "discriminative-hallucination",
    "attribute": lambda kind: kind.startswith("discriminative-attribute"),
    "relation": lambda kind: kind in ("discriminative-relation", "relation"),
}


def write_amber_folder(
    out_dir: str,
    annotations: Sequence[Mapping[str, Any]],
    queries: Sequence[Mapping[str, Any]],
    relation: Mapping[str, list[str]],
    safe_words: Sequence[str] = (),
    images: Iterable[tuple[str, Any]] | None = (),
) -> str:
    """Write the folder and return its path.

    `annotations` ({id, type, truth, hallu?}) and `queries` ({id, image, query}) as the benchmark's files;
    query_all.json holds every query, and each per-task query file (query_generative.json, ...) is written
    when the folder has queries of that task. `images`: (file name, PIL image) pairs saved under image/
    (the format from the name); None writes no image folder.
    """
    from clipdpo_cli.eval.amber.data import QUERY_FILES

    data = os.path.join(out_dir, "data")
    os.makedirs(os.path.join(data, "query"), exist_ok=True)
    if images is not None:
        os.makedirs(os.path.join(out_dir, "image"), exist_ok=True)
        for name, image in images:
            image.save(os.path.join(out_dir, "image", name))
    kinds = {a["id"]: a["type"] for a in annotations}
    _dump(os.path.join(data, "annotations.json"), list(annotations))
    _dump(os.path.join(data, "relation.json"), dict(relation))
    with open(os.path.join(data, "safe_words.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(safe_words))
    _dump(os.path.join(data, "query", QUERY_FILES["all"]), list(queries))
    for task, belongs in TASK_TYPES.items():
        chosen = [q for q in queries if belongs(kinds[q["id"]])]
        if chosen:
            _dump(os.path.join(data, "query", QUERY_FILES[task]), chosen)
    return out_dir


def _dump(path: str, value: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(value, fh, indent=1)
