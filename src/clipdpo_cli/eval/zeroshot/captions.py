"""Captions of the evaluation images, cached as JSONL: resumable, shardable, reusable by any text encoder.

A caption record is a `caption` record of the record contract plus the sample's dataset, key and label:
    {"id", "image", "kind": "caption", "text", "prompt", "model", "dataset", "key", "label", "class",
     "max_new_tokens", "temperature": 0.0}
Its id is make_id("zeroshot", dataset, key, prompt, model), where key is the image path relative to the
dataset folder, so a cache stays valid when the data moves and another text encoder re-scores it as is.
"""

from __future__ import annotations

import glob
import os
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from clipdpo_cli.io.errors import BadRecord, InputError, UsageError
from clipdpo_cli.io.records import make_id
from clipdpo_cli.stages.batched import prefetch_images as _prefetch


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
    """Captions read from JSONL files; new captions are appended to `write_path` one whole line at a time."""

    def __init__(self, read_paths: Sequence[str] = (), write_path: str | None = None) -> None:
        self.by_id: dict[str, str] = {}
        self.by_image: dict[tuple[str, str, str], dict[str, str]] = defaultdict(dict)
        self.write_path = write_path
        self._writer: Any = None
        paths = expand_paths(read_paths)
        if write_path and write_path not in paths:
            paths.append(write_path)
        for path in paths:
            self._load(path, repair=path == write_path)

    def _load(self, path: str, repair: bool) -> None:
        from clipdpo_cli.io.jsonl import existing_records

        if not os.path.exists(path):
            if not repair:
                raise InputError(f"captions file not found: {path}")
            return
        for record in existing_records(path, repair=repair):  # a killed run may have left half a line
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

    def add(self, record: dict[str, Any]) -> None:
        if self.write_path is not None:
            if self._writer is None:
                from clipdpo_cli.io.jsonl import JsonlWriter

                self._writer = JsonlWriter(self.write_path, append=True)  # closed on whole lines
            self._writer.write(record)
        self._index(record)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def prefetch_images(
    samples: Sequence[Sample], batch_size: int, on_bad: Callable[[Sample, BadRecord], None], workers: int = 4
) -> Iterator[tuple[list[Sample], list[Any]]]:
    """(samples, PIL images) per batch of `batch_size`, decoded ahead in threads (stages.batched).
    An unreadable image goes to `on_bad` (which raises to stop) and is left out of its batch."""
    items = (({"image": s.image}, s) for s in samples)
    decoded = _prefetch(items, workers=workers, lookahead=2 * batch_size)
    while chunk := list(islice(decoded, batch_size)):
        kept, images = [], []
        for _, sample, image in chunk:
            if isinstance(image, BadRecord):
                on_bad(sample, image)
                continue
            kept.append(sample)
            images.append(image)
        yield kept, images


def generate_captions(
    samples: Sequence[Sample],
    lvlm: Any,
    *,
    model: str,
    prompt: str,
    cache: CaptionCache,
    on_bad: Callable[[Sample, BadRecord], None],
    batch_size: int = 8,
    max_new_tokens: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Caption `samples` with the LVLM (greedy decoding), each batch added to the cache; returns a count.

    `on_batch(n)` is called after each batch with the images it captioned (the progress display)."""
    count = 0
    for kept, images in prefetch_images(samples, batch_size, on_bad):
        if not kept:
            continue
        texts = lvlm.generate(
            images,
            [prompt] * len(images),
            max_new_tokens=max_new_tokens,
            temperature=0.0,
            top_p=1.0,
        )
        for sample, text in zip(kept, texts, strict=True):
            cache.add(
                {
                    "id": caption_id(sample.dataset, sample.key, prompt, model),
                    "image": sample.image,
                    "kind": "caption",
                    "text": text.strip(),
                    "prompt": prompt,
                    "model": model,
                    "dataset": sample.dataset,
                    "key": sample.key,
                    "label": sample.label,
                    "class": sample.cls,
                    "max_new_tokens": max_new_tokens,
                    "temperature": 0.0,
                }
            )
        cache.flush()  # a killed run loses at most the batch in flight
        count += len(kept)
        if on_batch is not None:
            on_batch(len(kept))
    return count
