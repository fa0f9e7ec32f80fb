"""Reference log-probabilities computed once and stored in the pairs, so training needs no reference model.

TRL refuses `precompute_ref_log_probs` for vision data and keeps a full frozen copy of the LVLM in memory
(and runs it on every step). This record stage (`clipdpo ref-logps PAIRS -m MODEL -o FILE`) writes
`ref_chosen_logps` / `ref_rejected_logps` (and `ref_model`) into each pair, with the same collator and the
same log-prob code the trainer uses, so that `clipdpo train` on its output gives the same loss as with a
live reference model. The pass is an ordinary stage on the shared runner (io.runner.run_stage): shard it
over GPUs with --shard K/N, --resume it, skip bad pairs with --on-error skip, and reuse the result for every
run (beta, loss, lr sweeps) that starts from the same model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from clipdpo_cli.io.errors import BadRecord, UsageError
from clipdpo_cli.io.pairs import pair_row
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.train.data import VisionPairCollator


class RefScorer:
    """A frozen model that gives (chosen, rejected) completion log-probs for batches of pair rows."""

    def __init__(
        self,
        model_name: str,
        max_length: int | None = None,
        device: str = "auto",
        precision: str = "auto",
        chat_template: str | None = None,
        max_pixels: int | None = None,
    ) -> None:
        from trl.trainer.utils import add_fused_lm_head

        from clipdpo_cli.models.device import resolve_device
        from clipdpo_cli.train.settings import training_precision
        from clipdpo_cli.train.trainer import load_processor, load_reference, text_max_length, weight_dtypes

        self.device = resolve_device(device)
        self.processor = load_processor(model_name, chat_template, max_pixels)
        self.precision = training_precision(precision)
        # the weights in the run's compute precision (as training's live reference), no gradients
        self.model = load_reference(model_name, weight_dtypes(precision).frozen, self.device)
        add_fused_lm_head(self.model)
        self.collator = VisionPairCollator(self.processor, text_max_length(max_length))
        self.name = model_name

    def __call__(self, rows: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
        import torch

        from clipdpo_cli.models.device import autocast
        from clipdpo_cli.models.logps import completion_logps, split_pairs

        batch = {k: v.to(self.device) for k, v in self.collator(rows).items()}
        with torch.inference_mode(), autocast(self.device, self.precision):
            chosen, rejected = split_pairs(completion_logps(self.model, batch))
        return chosen.float().cpu().tolist(), rejected.float().cpu().tolist()


def add_ref_logps(
    records: Iterable[dict[str, Any]],
    scorer: RefScorer,
    ctx: StageContext,
    batch_size: int = 8,
    image_root: str | None = None,
    workers: int = 0,
) -> Iterator[dict[str, Any]]:
    """Each pair record, unchanged, plus ref_chosen_logps, ref_rejected_logps and ref_model.

    Images are decoded ahead by `workers` threads (stages.batched.prefetch_images, as caption and score do);
    a pair that cannot be used (a missing field, an image that does not decode) is ctx.bad: fail or skip.
    """
    from clipdpo_cli.stages.batched import prefetch_images

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
