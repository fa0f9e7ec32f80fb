"""Streaming image embeddings for record stages: each unique image is decoded and encoded once.

Records are cut into chunks of at most `batch_size` distinct images (the records of one image, which
arrive together, never straddle two chunks; any repeat of an image inside a chunk shares its embedding).
Decoding and preprocessing run in a torch DataLoader whose batch sampler pulls chunks lazily from the
record stream, so `workers` processes decode the next chunks while the model encodes the current one,
with constant memory, in input order. Records a stage cannot use (its `check` raises BadRecord) are
carried along without their image being decoded, and handed back with their error in input order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clipdpo_cli.io.errors import BadRecord
from clipdpo_cli.io.images import load_image, resolve_image
from clipdpo_cli.io.records import require

if TYPE_CHECKING:
    from clipdpo_cli.models.scorer import ImageTextScorer


@dataclass
class Entry:
    """One input record: its image key, or the error that makes it unusable."""

    record: dict[str, Any]
    image: str | None = None
    error: BadRecord | None = None
    checked: Any = None  # what `check` returned for the record (e.g. the text to score)


@dataclass
class Chunk:
    entries: list[Entry] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # distinct image paths, in order of appearance


@dataclass
class EncodedChunk:
    """A chunk with its image embeddings; `failed` maps an image that did not decode to its error."""

    entries: list[Entry]
    rows: dict[str, int]
    embeddings: Any  # torch.Tensor [len(rows), d]
    failed: dict[str, BadRecord]


def plan_chunks(
    records: Iterable[dict[str, Any]],
    batch_size: int,
    image_root: str | None = None,
    check: Callable[[dict[str, Any]], Any] | None = None,
) -> Iterator[Chunk]:
    """Cut the record stream into chunks of at most `batch_size` distinct images."""
    chunk = Chunk()
    seen: set[str] = set()
    for record in records:
        try:
            image = resolve_image(require(record, "image"), image_root)
            checked = check(record) if check is not None else None
        except BadRecord as exc:
            chunk.entries.append(Entry(record, error=exc))
            continue
        if image not in seen:
            if len(chunk.images) >= batch_size:
                yield chunk
                chunk, seen = Chunk(), set()
            seen.add(image)
            chunk.images.append(image)
        chunk.entries.append(Entry(record, image=image, checked=checked))
    if chunk.entries:
        yield chunk


class _ImageFiles:
    """A map-style dataset over image paths: (pixels, None) or (None, (message, reason))."""

    def __init__(self, preprocess: Any) -> None:
        self.preprocess = preprocess

    def __getitem__(self, path: str) -> tuple[Any, tuple[str, str] | None]:
        try:
            return self.preprocess(load_image(path)), None
        except BadRecord as exc:
            return None, (str(exc), exc.reason)
        except Exception as exc:  # a decoder error PIL raised late, inside the transform
            return None, (f"cannot decode image {path}: {exc}", "corrupt image")


class _ChunkSampler:
    """Batch sampler for the DataLoader: yields each chunk's image paths, queues the chunk for the consumer.

    An error raised by the record stream (e.g. a bad input line under --on-error fail) is kept and
    re-raised after the chunks before it were consumed, so output stays in order up to the error.
    """

    def __init__(self, chunks: Iterator[Chunk]) -> None:
        self.chunks = chunks
        self.pending: deque[Chunk] = deque()
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[list[str]]:
        try:
            for chunk in self.chunks:
                self.pending.append(chunk)
                yield chunk.images
        except Exception as exc:
            self.error = exc


def _collate(items: list[Any]) -> list[Any]:
    return items


def _worker_init(_worker_id: int) -> None:
    import sys
    import threading

    import torch

    torch.set_num_threads(1)
    sys.excepthook = _quiet_when_orphaned
    threading.excepthook = lambda a: _quiet_when_orphaned(a.exc_type, a.exc_value, a.exc_traceback)


def _quiet_when_orphaned(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    """A decoding worker's uncaught errors, except the broken connections of a killed main process.

    When the main process dies (kill -9, a crash) the worker's multiprocessing resource-sharer thread
    loses its peer and printed a ConnectionResetError traceback into the user's terminal; the main process
    already said (or could not say) what happened, so these are dropped.
    """
    import sys

    if issubclass(kind, (ConnectionError, EOFError)):
        return
    sys.__excepthook__(kind, value, tb)


def encode_image_chunks(
    records: Iterable[dict[str, Any]],
    clip: ImageTextScorer,
    *,
    batch_size: int = 64,
    workers: int = 0,
    image_root: str | None = None,
    check: Callable[[dict[str, Any]], Any] | None = None,
) -> Iterator[EncodedChunk]:
    """Chunks of records with the L2-normalised embedding of each distinct image (see the module doc)."""
    import torch
    from torch.utils.data import DataLoader

    from clipdpo_cli.models.scorer import stack_pixels

    sampler = _ChunkSampler(plan_chunks(records, batch_size, image_root, check))
    loader = DataLoader(
        _ImageFiles(clip.preprocess),  # type: ignore[arg-type]
        batch_sampler=sampler,  # type: ignore[arg-type]
        num_workers=workers,
        collate_fn=_collate,
        worker_init_fn=_worker_init if workers else None,
        prefetch_factor=2 if workers else None,
        pin_memory=getattr(clip.device, "type", "cpu") == "cuda",
    )
    for decoded in loader:
        chunk = sampler.pending.popleft()
        rows: dict[str, int] = {}
        pixels = []
        failed: dict[str, BadRecord] = {}
        for path, (tensor, error) in zip(chunk.images, decoded, strict=True):
            if error is not None:
                failed[path] = BadRecord(error[0], reason=error[1])
            else:
                rows[path] = len(pixels)
                pixels.append(tensor)
        embeddings = clip.encode_pixels(stack_pixels(pixels)) if pixels else torch.zeros(0, 0)
        yield EncodedChunk(chunk.entries, rows, embeddings, failed)
    if sampler.error is not None:
        raise sampler.error
