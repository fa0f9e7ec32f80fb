"""The preference losses of the paper's Table 5, as plain tensor formulas.

Names users pick with `--loss` and what runs them:

    dpo   -> TRL DPOTrainer loss_type "sigmoid"   -log s(b * d)
    ipo   -> TRL DPOTrainer loss_type "ipo"       (d_c/|y_c| - d_r/|y_r| - 1/(2b))^2   (TRL length-normalises)
    slic  -> TRL DPOTrainer loss_type "hinge"     max(0, 1 - b * d)
    cdpo  -> our own (below)                      -(1-e) log s(b d) - e log s(-b d)
    kto   -> TRL KTOTrainer loss_type "kto"       1 - s(b (r - z)) if desirable, else 1 - s(b (z - r))

with d = (log pi(y_c) - log ref(y_c)) - (log pi(y_r) - log ref(y_r)), b = beta, e = label smoothing and z the
KL estimate. Any other TRL DPO loss_type (robust, exo_pair, bco_pair, apo_zero, ...) passes through by name.

cDPO (Mitchell 2023, "A note on DPO with noisy preferences") treats each label as flipped with probability e.
TRL's "sigmoid" loss no longer takes label smoothing, and its "robust" loss is a different (unbiased)
estimator, so cDPO is computed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LossChoice:
    trainer: str  # "dpo" or "kto"
    loss_type: str  # the TRL loss_type, or "cdpo"


LOSSES: dict[str, LossChoice] = {
    "dpo": LossChoice("dpo", "sigmoid"),
    "ipo": LossChoice("dpo", "ipo"),
    "slic": LossChoice("dpo", "hinge"),
    "cdpo": LossChoice("dpo", "cdpo"),
    "kto": LossChoice("kto", "kto"),
}

TRL_DPO_LOSSES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired",
    "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)  # fmt: skip
TRL_KTO_LOSSES = ("kto", "apo_zero_unpaired")


def resolve_loss(name: str) -> LossChoice:
    """A --loss value: one of LOSSES, any TRL DPO / KTO loss_type by its TRL name, or several TRL DPO
    loss types joined by commas (combined by TRL, weights from `loss_weights` in --config; e.g. MPO)."""
    from clipdpo_cli.io.errors import UsageError

    key = name.strip().lower()
    if "," in key:
        parts = [LOSSES[p].loss_type if p in LOSSES else p for p in (x.strip() for x in key.split(","))]
        if not all(p in TRL_DPO_LOSSES for p in parts):
            raise UsageError(f"--loss {name}: only TRL DPO loss types combine ({', '.join(TRL_DPO_LOSSES)})")
        return LossChoice("dpo", ",".join(parts))
    if key in LOSSES:
        return LOSSES[key]
    if key in TRL_DPO_LOSSES:
        return LossChoice("dpo", key)
    if key in TRL_KTO_LOSSES:
        return LossChoice("kto", key)
    known = ", ".join([*LOSSES, *[n for n in TRL_DPO_LOSSES + TRL_KTO_LOSSES if n not in ("kto",)]])
    raise UsageError(f"--loss: unknown loss '{name}' (known: {known})")


def cdpo_loss(delta: Any, beta: float, label_smoothing: float) -> Any:
    """Conservative DPO per pair: -(1-e) log sigmoid(b d) - e log sigmoid(-b d)."""
    import torch.nn.functional as F

    return -(1.0 - label_smoothing) * F.logsigmoid(beta * delta) - label_smoothing * F.logsigmoid(
        -beta * delta
    )
