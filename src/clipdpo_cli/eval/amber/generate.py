"""Responses to AMBER's queries from an LVLM: descriptions, and yes/no answers by next-token
probability or by free generation. Written as JSONL, one line per query, resumable and shardable."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.eval.amber.data import GENERATIVE, AmberData, task_of
from clipdpo_cli.eval.amber.responses import normalize_answer
from clipdpo_cli.io.errors import BadRecord, InputError
from clipdpo_cli.io.images import load_image
from clipdpo_cli.io.jsonl import done_ids
from clipdpo_cli.io.shard import Shard

YES_NO_MODES = ("prob", "generate")
# LLaVA-1.5's instruction for short answers (what it was trained with for yes/no benchmarks).
DEFAULT_YES_NO_SUFFIX = "\nAnswer the question using a single word or phrase."
YES_NO_MAX_NEW_TOKENS = 8


@dataclass
class GenerationSettings:
    yes_no: str = "prob"
    yes_no_suffix: str = DEFAULT_YES_NO_SUFFIX
    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 8


def done_response_ids(path: str | None) -> set[int]:
    """AMBER ids (integers) already in a responses JSONL (for --resume); a torn last line is cut first."""
    return done_ids(path, id_type=int) if path else set()


class _ImageCache:
    """Opens each image once while its queries are near each other (a small LRU)."""

    def __init__(self, folder: str, size: int = 64) -> None:
        self.folder = folder
        self.size = size
        self._images: OrderedDict[str, Any] = OrderedDict()

    def get(self, name: str) -> Any:
        image = self._images.get(name)
        if image is None:
            try:
                image = load_image(name, self.folder)
            except BadRecord as exc:
                raise InputError(f"{exc} (the AMBER images go in --amber-root/image/)") from None
            self._images[name] = image
            if len(self._images) > self.size:
                self._images.popitem(last=False)
        else:
            self._images.move_to_end(name)
        return image


def _batches(items: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _prob_answers(lvlm: Any, images: list[Any], prompts: list[str]) -> list[tuple[str, float, float]]:
    """('Yes'|'No', p_yes, p_no) per row; each probability sums the capitalised and lower-case word."""
    rows = lvlm.next_token_probs(images, prompts, candidates=["Yes", "No", "yes", "no"])
    out = []
    for row in rows:
        p_yes, p_no = row["Yes"] + row["yes"], row["No"] + row["no"]
        out.append(("Yes" if p_yes > p_no else "No", p_yes, p_no))
    return out


def generate_responses(
    lvlm: Any,
    data: AmberData,
    queries: list[dict[str, Any]],
    image_dir: str,
    settings: GenerationSettings,
    write: Callable[[dict[str, Any]], None],
    done: set[int] | frozenset[int] = frozenset(),
    shard: Shard | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Answer `queries` ({"id", "image", "query"}) not in `done` and owned by `shard`; call `write` with
    one record per answer, batch by batch. Returns the number of responses written."""
    shard = shard or Shard()
    todo = [q for q in queries if q["id"] not in done and shard.owns(q["image"])]
    describe = [q for q in todo if data.annotations[q["id"]]["type"] == GENERATIVE]
    yes_no = [q for q in todo if data.annotations[q["id"]]["type"] != GENERATIVE]
    cache = _ImageCache(image_dir)
    written = 0
    base = {"model": lvlm.name}

    def emit(query: dict[str, Any], response: str, **extra: Any) -> None:
        nonlocal written
        task = task_of(data.annotations[query["id"]]["type"])
        write({"id": query["id"], "image": query["image"], "query": query["query"], "response": response,
               "task": task, **base, **extra})  # fmt: skip
        written += 1

    for batch in _batches(describe, settings.batch_size):
        images = [cache.get(q["image"]) for q in batch]
        texts = lvlm.generate(
            images, [q["query"] for q in batch], max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature, top_p=settings.top_p,
            seed=[settings.seed + q["id"] for q in batch],
        )  # fmt: skip
        for query, text in zip(batch, texts, strict=True):
            emit(query, text.strip(), mode="describe")
        if on_batch:
            on_batch(len(batch))

    for batch in _batches(yes_no, settings.batch_size):
        images = [cache.get(q["image"]) for q in batch]
        prompts = [q["query"] + settings.yes_no_suffix for q in batch]
        if settings.yes_no == "prob":
            for query, (answer, p_yes, p_no) in zip(batch, _prob_answers(lvlm, images, prompts), strict=True):
                emit(query, answer, mode="yes_no_prob", p_yes=round(p_yes, 6), p_no=round(p_no, 6))
        else:
            texts = lvlm.generate(
                images, prompts, max_new_tokens=YES_NO_MAX_NEW_TOKENS, temperature=settings.temperature,
                top_p=settings.top_p, seed=[settings.seed + q["id"] for q in batch],
            )  # fmt: skip
            for query, text in zip(batch, texts, strict=True):
                emit(query, normalize_answer(text.strip()), mode="yes_no_generate", text=text)
        if on_batch:
            on_batch(len(batch))
    return written
