"""`clipdpo ref-logps`: reference log-probabilities computed once and stored in the pairs.

An ordinary record stage on the shared runner (io.runner.run_stage): shard it over GPUs with --shard K/N,
--resume it, skip bad pairs with --on-error skip, and reuse the result for every run (beta, loss, lr sweeps)
that starts from the same model. The model is a `PairLogps` (train/refcache.py `RefScorer`: the training
encoding and log-prob code), so training on the output gives the same loss as with a live reference model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from clipdpo_cli.io.errors import BadRecord, UsageError
from clipdpo_cli.io.pairs import pair_row
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.stages.batched import prefetch_images


class PairLogps(Protocol):
    """A frozen model's summed log-probs of each row's chosen and rejected answer (train/refcache.py)."""

    name: str

    def __call__(self, rows: list[dict[str, Any]]) -> tuple[list[float], list[float]]: ...


def add_ref_logps(
    records: Iterable[dict[str, Any]],
    scorer: PairLogps,
    ctx: StageContext,
    batch_size: int = 8,
    image_root: str | None = None,
    workers: int = 0,
) -> Iterator[dict[str, Any]]:
    """Each pair record, unchanged, plus ref_chosen_logps, ref_rejected_logps and ref_model.

    Images are decoded ahead by `workers` threads (batched.py prefetch_images, as caption and score do);
    a pair that cannot be used (a missing field, an image that does not decode) is ctx.bad: fail or skip.
    """
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    pending: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def flush() -> Iterator[dict[str, Any]]:
        chosen, rejected = scorer([row for _, row in pending])
        for (record, _), c, r in zip(pending, chosen, rejected, strict=True):
            yield {**record, "ref_chosen_logps": c, "ref_rejected_logps": r, "ref_model": scorer.name}
        pending.clear()

    for record, _, image in prefetch_images(((r, None) for r in records), image_root, workers):
        try:
            row = pair_row(record, image_root, check_image=False)
            if isinstance(image, BadRecord):
                raise image
        except BadRecord as exc:
            ctx.bad(record, exc)
            continue
        row["image"] = image
        pending.append((record, row))
        if len(pending) >= batch_size:
            yield from flush()
    if pending:
        yield from flush()
