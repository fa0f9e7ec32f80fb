"""AMBER's queries as records for the respond stage (stages/respond.py): the benchmark's one exporter.

    {"id": 1, "image": "AMBER_ROOT/image/AMBER_1.jpg", "prompt": "Describe this image.",
     "query": "Describe this image.", "task": "generative"}
    {"id": 1005, ..., "prompt": "Is there a dog in this image?\nAnswer the question using a single word or
     phrase.", "query": "Is there a dog in this image?", "task": "existence", "yes_no": true}

A yes/no question's prompt is its query plus the suffix (LLaVA-1.5's instruction for short answers, what it
was trained with for yes/no benchmarks); `yes_no` tells the respond stage to answer it by --yes-no.
`clipdpo eval-amber --write-queries FILE` writes them; `clipdpo respond FILE -m MODEL` answers them and
`clipdpo eval-amber --responses` scores the answers. `eval-amber --model` runs the same three steps.
"""

from __future__ import annotations

import os
from typing import Any

from clipdpo_cli.eval.amber.data import GENERATIVE, AmberData, task_of

DEFAULT_YES_NO_SUFFIX = "\nAnswer the question using a single word or phrase."


def query_records(
    data: AmberData,
    task: str,
    image_dir: str,
    yes_no_suffix: str = DEFAULT_YES_NO_SUFFIX,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The task's queries by id as respond records; with `limit`, the first `limit` of each task part
    (generative, existence, attribute, relation)."""
    out: list[dict[str, Any]] = []
    taken: dict[str, int] = {}
    for query in data.queries(task):
        kind = data.annotations[query["id"]]["type"]
        part = task_of(kind)
        if limit is not None:
            if taken.get(part, 0) >= limit:
                continue
            taken[part] = taken.get(part, 0) + 1
        image = os.path.join(image_dir, query["image"])
        record = {"id": query["id"], "image": image, "prompt": query["query"], "query": query["query"],
                  "task": part}  # fmt: skip
        if kind != GENERATIVE:
            record.update(prompt=query["query"] + yes_no_suffix, yes_no=True)
        out.append(record)
    return out
