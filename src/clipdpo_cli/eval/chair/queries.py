"""Description queries of COCO images for the respond stage: CHAIR's (and Object HalBench's) exporter.

    {"id": "chair-310196", "image": "IMAGE_ROOT/COCO_val2014_000000310196.jpg", "prompt": "...",
     "image_id": 310196}

The images: `--image-ids FILE` (Object HalBench's 300 images, say), one per line as a number or a JSON object
{"image_id": N, "question" or "prompt": text} (a line's own prompt is kept, as in RLHF-V's Object HalBench
file), else every image of the instance file. The prompts (`--prompts FILE`, one a line) go round the images
in order, so a fixed list gives every run the same prompt per image.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.textfiles import read_text_file

DEFAULT_PROMPT = "Please describe this image in detail."


def read_image_ids(path: str) -> list[tuple[int, str | None]]:
    """(image id, its own prompt or None) per line of an --image-ids file."""
    out: list[tuple[int, str | None]] = []
    for n, line in enumerate(read_text_file(path, "image id list").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.isdigit():
            out.append((int(line), None))
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            item = None
        image_id = item.get("image_id") if isinstance(item, dict) else None
        if isinstance(image_id, str) and image_id.isdigit():
            image_id = int(image_id)
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            raise InputError(f"{path}: line {n}: expected a COCO image id or a JSON object with 'image_id'")
        prompt = item.get("prompt", item.get("question"))
        out.append((image_id, prompt if isinstance(prompt, str) else None))
    if not out:
        raise InputError(f"{path}: no image ids")
    seen: set[int] = set()
    for image_id, _ in out:
        if image_id in seen:
            raise InputError(f"{path}: image id {image_id} appears twice (one description per image)")
        seen.add(image_id)
    return out


def read_prompts(path: str | None) -> list[str]:
    if path is None:
        return [DEFAULT_PROMPT]
    prompts = [p.strip() for p in read_text_file(path, "prompt file").splitlines() if p.strip()]
    if not prompts:
        raise InputError(f"{path}: no prompts")
    return prompts


def query_records(
    images: list[tuple[int, str | None]], files: dict[int, str], image_root: str | None, prompts: list[str]
) -> list[dict[str, Any]]:
    """One description query per image: its own prompt, else prompt i mod len(prompts) for the i-th."""
    out = []
    for i, (image_id, own) in enumerate(images):
        name = files.get(image_id) or f"COCO_val2014_{image_id:012d}.jpg"
        image = os.path.join(image_root, name) if image_root else name
        out.append(
            {
                "id": f"chair-{image_id}",
                "image": image,
                "prompt": own or prompts[i % len(prompts)],
                "image_id": image_id,
            }
        )
    return out
