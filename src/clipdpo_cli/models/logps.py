"""Sequence log-probabilities of completions, computed exactly as TRL's DPOTrainer computes them.

Shared by our cDPO loss (train/dpo_trainer.py), the reference log-prob pass (train/refcache.py) and the LVLM
likelihood scorer (models/lvlm.py `text_logprobs`), so that precomputed reference values and the ones a live
reference model gives during training come from the same code.
"""

from __future__ import annotations

from typing import Any

NON_MODEL_KEYS = frozenset({"completion_mask", "ref_chosen_logps", "ref_rejected_logps", "label"})


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """The model's forward kwargs of a collated batch (drops masks and cached log-probs)."""
    kwargs = {k: v for k, v in batch.items() if k not in NON_MODEL_KEYS and not k.startswith("KL_")}
    kwargs["use_cache"] = False
    return kwargs


def completion_logps(model: Any, batch: dict[str, Any]) -> Any:
    """Sum of log p(token) over each row's completion tokens, shape (rows,).

    `model` must carry TRL's fused LM head (trl.trainer.utils.add_fused_lm_head), which DPOTrainer adds to the
    policy and the reference model: it scores only the completion positions, without the full logits.
    """
    completion_mask = batch["completion_mask"]
    labels = batch["input_ids"].masked_fill(completion_mask == 0, -100)
    outputs = model(**model_inputs(batch), labels=labels, fused_lm_head=True)
    seq_len = completion_mask.size(1) - 1
    return outputs.log_probs[:, -seq_len:].sum(dim=1)


def split_pairs(values: Any) -> tuple[Any, Any]:
    """A paired batch is [chosen rows..., rejected rows...]: the two halves."""
    chosen, rejected = values.chunk(2, dim=0)
    return chosen, rejected
