"""Captions of the evaluation images, cached as JSONL: resumable, shardable, reusable by any text encoder.

The captions are written by the respond stage (stages/respond.py) on the shared runner, from one query
record per image (`caption_query`); the runner's --resume rule skips the ids already in the output file.
A caption record is a `caption` record of the record contract plus the sample's dataset, key and label:
    {"id", "image", "prompt", "kind": "caption", "dataset", "key", "label", "class", "max_new_tokens",
     "temperature": 0.0, "text", "model", "mode": "describe"}
Its id is make_id("zeroshot", dataset, key, prompt, model), where key is the image path relative to the
dataset folder, so a cache stays valid when the data moves and another text encoder re-scores it as is.
`CaptionCache` reads the files back (globs too) for scoring; it writes nothing.
"""

from __future__ import annotations

import glob
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.io.records import make_id


@dataclass(frozen=True)
class Sample:
    """One image to classify: its dataset, cache key, path, label and class id."""

    dataset: str
    key: str
    image: str
    label: int
    cls: str


def caption_id(dataset: str, key: str, prompt: str, model: str) -> str:
    return make_id("zeroshot", dataset, key, prompt, model)


def expand_paths(patterns: Sequence[str]) -> list[str]:
    """Cache files named by paths or glob patterns (a pattern matching nothing names nothing)."""
    paths: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        paths += [p for p in matches if p not in paths]
    return paths


class CaptionCache:
    """Captions read from JSONL files (a missing `optional` file is an empty one)."""

    def __init__(self, read_paths: Sequence[str] = (), optional: str | None = None) -> None:
        self.by_id: dict[str, str] = {}
        self.by_image: dict[tuple[str, str, str], dict[str, str]] = defaultdict(dict)
        paths = expand_paths(read_paths)
        if optional and optional not in paths:
            paths.append(optional)
        for path in paths:
            self.load(path, must_exist=path != optional)

    def load(self, path: str, must_exist: bool = True) -> None:
        """Add the captions of one file (its last line is skipped when a killed run tore it)."""
        from clipdpo_cli.io.jsonl import existing_records

        if not os.path.exists(path):
            if must_exist:
                raise InputError(f"captions file not found: {path}")
            return
        self.add(existing_records(path, repair=False))

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        """Index caption records (others are passed over)."""
        for record in records:
            self._index(record)

    def _index(self, record: dict[str, Any]) -> None:
        fields = [record.get(f) for f in ("id", "dataset", "key", "prompt", "model", "text")]
        if all(isinstance(f, str) for f in fields):
            rid, dataset, key, prompt, model, text = fields
            self.by_id[rid] = text  # type: ignore[index]
            self.by_image[(dataset, key, prompt)][model] = text  # type: ignore[index]

    def __len__(self) -> int:
        return len(self.by_id)

    def lookup(self, sample: Sample, prompt: str, model: str | None) -> str | None:
        """The cached caption; without a model name, the one model's caption (several: UsageError)."""
        if model is not None:
            return self.by_id.get(caption_id(sample.dataset, sample.key, prompt, model))
        found = self.by_image.get((sample.dataset, sample.key, prompt))
        if not found:
            return None
        if len(found) > 1:
            raise UsageError(
                f"the captions cache holds captions of several models ({', '.join(sorted(found))}) for the "
                f"same images and prompt: name one with --model"
            )
        return next(iter(found.values()))


def caption_query(sample: Sample, prompt: str, model: str, max_new_tokens: int) -> dict[str, Any]:
    """The respond stage's query for one sample's caption (its output adds text, model and mode)."""
    return {
        "id": caption_id(sample.dataset, sample.key, prompt, model),
        "image": sample.image,
        "prompt": prompt,
        "kind": "caption",
        "dataset": sample.dataset,
        "key": sample.key,
        "label": sample.label,
        "class": sample.cls,
        "max_new_tokens": max_new_tokens,
        "temperature": 0.0,
    }
