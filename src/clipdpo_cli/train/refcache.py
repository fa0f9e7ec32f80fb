"""`clipdpo ref-logps`'s reference model: pair rows -> (chosen, rejected) log-probs, encoded as training does.

TRL refuses `precompute_ref_log_probs` for vision data and keeps a full frozen copy of the LVLM in memory
(and runs it on every step). The record stage stages/ref_logps.py (`clipdpo ref-logps PAIRS -m MODEL -o
FILE`) writes `ref_chosen_logps` / `ref_rejected_logps` (and `ref_model`) into each pair with this scorer:
the same collator, the same model loading and the same log-prob code (models/logps.py) the trainer uses,
so that `clipdpo train` on its output gives the same loss as with a live reference model.
"""

from __future__ import annotations

from typing import Any

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
        from clipdpo_cli.train.loading import load_processor, load_reference, text_max_length, weight_dtypes
        from clipdpo_cli.train.settings import training_precision

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
