"""POPE's questions as records for the respond stage (stages/respond.py): the benchmark's exporter.

    {"id": "random-1", "image": "IMAGE_ROOT/COCO_val2014_000000310196.jpg",
     "prompt": "Is there a snowboard in the image?\nAnswer the question using a single word or phrase.",
     "yes_no": true, "question_id": 1, "question": "Is there a snowboard in the image?", "label": "yes",
     "split": "random", "pope_image": "COCO_val2014_000000310196.jpg"}

The question's own fields ride along; its `text` is kept as `question` (the name lmms-eval's POPE dataset
uses), as the respond stage writes a free answer's raw text to `text`. The default post-prompt is lmms-eval's
(lmms_eval/tasks/pope/pope.yaml, `lmms_eval_specific_kwargs.default.post_prompt`); `--post-prompt ''` asks
the bare question, as the POPE paper did.
"""

from __future__ import annotations

import os
from typing import Any

from clipdpo_cli.eval.pope.data import query_id

# lmms-eval's POPE post-prompt (EvolvingLMMs-Lab/lmms-eval lmms_eval/tasks/pope/pope.yaml, default), the same
# LLaVA-1.5 short-answer instruction eval-amber appends to its yes/no questions.
DEFAULT_POST_PROMPT = "\nAnswer the question using a single word or phrase."


def query_records(
    questions: dict[str, list[dict[str, Any]]],
    image_root: str | None,
    post_prompt: str = DEFAULT_POST_PROMPT,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Respond records of every question, set by set in file order (the first `limit` of each set)."""
    out: list[dict[str, Any]] = []
    for split, items in questions.items():
        for item in items[:limit]:
            question = item["text"]
            image = os.path.join(image_root, item["image"]) if image_root else item["image"]
            record: dict[str, Any] = {
                "id": query_id(split, item["question_id"]),
                "image": image,
                "prompt": question + post_prompt,
                "yes_no": True,
            }
            for key, value in item.items():
                if key not in ("text", "image"):
                    record.setdefault(key, value)
            record.update(question=question, split=split, pope_image=item["image"])
            out.append(record)
    return out
