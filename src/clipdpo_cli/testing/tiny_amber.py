"""Writes a stand-in AMBER folder (the official layout, a few generated images) for tests and the demo.

    ROOT/data/annotations.json, relation.json, safe_words.txt, metrics.txt, query/query_*.json
    ROOT/image/AMBER_1.jpg ...

Ids follow the real benchmark's scheme: descriptions first (1..n_images), then yes/no questions.
"""

from __future__ import annotations

import json
import os
from typing import Any

RELATION = {
    "dog": ["leash", "puppy", "collar"],
    "cat": ["puppy"],
    "tree": ["grass", "leave"],
    "car": ["road", "wheel"],
    "bird": ["sky"],
    "sky": [],
    "grass": [],
    "road": [],
    "bench": ["orange"],
    "boat": ["water"],
    "water": [],
}
SAFE_WORDS = ["orange", "snack", "line", "camera", "light", "shoe", "sign", "range", "individual"]
COLORS = ["red", "green", "blue", "white", "yellow", "purple"]

# (truth, hallu) of each image's description annotation.
DESCRIPTIONS = [
    (["dog", "tree", "grass", "sky"], ["cat", "car", "bird"]),
    (["car", "road", "tree"], ["dog", "bench"]),
    (["boat", "water", "sky"], ["bird", "car"]),
]
# (type, truth, query) asked about every image.
QUESTIONS = [
    ("discriminative-attribute-state", "yes", "Is the sky clear in this image?"),
    ("discriminative-attribute-number", "no", "Are there three trees in this image?"),
    ("discriminative-attribute-action", "no", "Is the dog running in this image?"),
    ("discriminative-hallucination", "no", "Is there a cat in this image?"),
    ("discriminative-relation", "yes", "Is the tree next to the road?"),
    ("relation", "no", "Is there direct contact between the car and the sky?"),
]
QUERY_FILE_TYPES = {
    "query_generative.json": ("generative",),
    "query_discriminative-attribute.json": (
        "discriminative-attribute-state",
        "discriminative-attribute-number",
        "discriminative-attribute-action",
    ),
    "query_discriminative-existence.json": ("discriminative-hallucination",),
    "query_discriminative-relation.json": ("discriminative-relation", "relation"),
}  # fmt: skip


def _write_json(path: str, value: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(value, fh, indent=1)


def build_tiny_amber(out_dir: str, n_images: int = 3, images: bool = True) -> str:
    """Write the folder (n_images <= 6) and return its path."""
    from PIL import Image

    data = os.path.join(out_dir, "data")
    os.makedirs(os.path.join(data, "query"), exist_ok=True)
    annotations: list[dict[str, Any]] = []
    queries: list[dict[str, Any]] = []
    for i in range(n_images):
        truth, hallu = DESCRIPTIONS[i % len(DESCRIPTIONS)]
        annotations.append({"id": i + 1, "type": "generative", "truth": truth, "hallu": hallu})
        queries.append({"id": i + 1, "image": f"AMBER_{i + 1}.jpg", "query": "Describe this image."})
    for kind, truth, question in QUESTIONS:
        for i in range(n_images):
            qid = len(annotations) + 1
            annotations.append({"id": qid, "type": kind, "truth": truth})
            queries.append({"id": qid, "image": f"AMBER_{i + 1}.jpg", "query": question})
    kinds = {a["id"]: a["type"] for a in annotations}
    _write_json(os.path.join(data, "annotations.json"), annotations)
    _write_json(os.path.join(data, "relation.json"), RELATION)
    with open(os.path.join(data, "safe_words.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(SAFE_WORDS))
    _write_json(os.path.join(data, "query", "query_all.json"), queries)
    _write_json(os.path.join(data, "query", "query_discriminative.json"),
                [q for q in queries if kinds[q["id"]] != "generative"])  # fmt: skip
    for name, types in QUERY_FILE_TYPES.items():
        _write_json(os.path.join(data, "query", name), [q for q in queries if kinds[q["id"]] in types])
    if images:
        os.makedirs(os.path.join(out_dir, "image"), exist_ok=True)
        for i in range(n_images):
            img = Image.new("RGB", (64 + 16 * i, 48), COLORS[i % len(COLORS)])
            img.save(os.path.join(out_dir, "image", f"AMBER_{i + 1}.jpg"))
    return out_dir
