"""The loss table: each preference loss `--loss` names, with what runs it, its formula and its own defaults.

    dpo   -> TRL DPOTrainer loss_type "sigmoid"   -log s(b * d)
    ipo   -> TRL DPOTrainer loss_type "ipo"       (d_c/|y_c| - d_r/|y_r| - 1/(2b))^2   (TRL length-normalises)
    slic  -> TRL DPOTrainer loss_type "hinge"     max(0, 1 - b * d)
    cdpo  -> our own formula (cdpo_loss)          -(1-e) log s(b d) - e log s(-b d)      e default 0.1
    kto   -> TRL KTOTrainer loss_type "kto"       1 - s(b (r - z)) if desirable, else 1 - s(b (z - r))

with d = (log pi(y_c) - log ref(y_c)) - (log pi(y_r) - log ref(y_r)), b = beta, e = label smoothing and z the
KL estimate. Any other TRL DPO / KTO loss_type (robust, exo_pair, bco_pair, apo_zero, ...) passes through by
name, and several TRL DPO loss types joined by commas are combined by TRL (weights: `loss_weights`).

cDPO (Mitchell 2023, "A note on DPO with noisy preferences") treats each label as flipped with probability e.
TRL's "sigmoid" loss no longer takes label smoothing, and its "robust" loss is a different (unbiased)
estimator, so cDPO is computed here (`Loss.own_formula`, used by dpo_trainer.ClipdpoDPOTrainer).

Adding a loss is one `Loss` entry in LOSSES: the trainer it runs on, the TRL loss_type(s), its formula and
paper reference, the config defaults it brings (an option left unset takes them) and its checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from clipdpo_cli.io.errors import UsageError


def cdpo_loss(delta: Any, beta: float, label_smoothing: float) -> Any:
    """Conservative DPO per pair: -(1-e) log sigmoid(b d) - e log sigmoid(-b d)."""
    import torch.nn.functional as F

    return -(1.0 - label_smoothing) * F.logsigmoid(beta * delta) - label_smoothing * F.logsigmoid(
        -beta * delta
    )


def _kl_needs_two(values: Mapping[str, Any]) -> None:
    if values["per_device_train_batch_size"] < 2:
        raise UsageError("KTO needs --per-device-batch-size of at least 2 (its KL term compares examples)")


@dataclass(frozen=True)
class Loss:
    """One preference loss: the trainer that runs it, TRL's loss_type(s), its formula and its defaults."""

    name: str  # what --loss takes
    trainer: str  # "dpo" (TRL DPOTrainer / DPOConfig) or "kto" (KTOTrainer / KTOConfig)
    loss_type: tuple[str, ...]  # the config's loss_type: TRL's name(s) (DPO takes a list, KTO one name)
    formula: str = "TRL's own"
    reference: str = ""  # paper and where the default values come from
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # config fields
    own_formula: Callable[[Any, float, float], Any] | None = None  # per-pair loss computed here, not by TRL
    check: Callable[[Mapping[str, Any]], None] | None = None  # given the TRL config kwargs, before loading

    @property
    def trl_loss_type(self) -> Any:
        """The value of the TRL config's loss_type field."""
        return list(self.loss_type) if self.trainer == "dpo" else self.loss_type[0]

    def validate(self, config: Mapping[str, Any]) -> None:
        if self.check is not None:
            self.check(config)


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("dpo", "dpo", ("sigmoid",), "-log s(b d)", "Rafailov 2023; paper Eq. 1, beta 0.1 (Table 5)"),
        Loss("ipo", "dpo", ("ipo",), "(d_c/|y_c| - d_r/|y_r| - 1/(2b))^2", "Azar 2023 (paper Table 5)"),
        Loss("slic", "dpo", ("hinge",), "max(0, 1 - b d)", "Zhao 2023 (paper Table 5)"),
        Loss(
            "cdpo",
            "dpo",
            ("sigmoid",),
            "-(1-e) log s(b d) - e log s(-b d)",
            "Mitchell 2023; label smoothing 0.1 (paper Table 5)",
            defaults=MappingProxyType({"label_smoothing": 0.1}),
            own_formula=cdpo_loss,
        ),
        Loss(
            "kto",
            "kto",
            ("kto",),
            "1 - s(b (r - z)) / 1 - s(b (z - r))",
            "Ethayarajh 2024 (paper Table 5)",
            check=_kl_needs_two,
        ),
    )
}

TRL_DPO_LOSSES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired",
    "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)  # fmt: skip
TRL_KTO_LOSSES = ("kto", "apo_zero_unpaired")


def resolve_loss(name: str) -> Loss:
    """A --loss value: one of LOSSES, any TRL DPO / KTO loss_type by its TRL name, or several TRL DPO
    loss types joined by commas (combined by TRL, weights from `loss_weights` in --config; e.g. MPO)."""
    key = name.strip().lower()
    if "," in key:
        parts = [_trl_part(p.strip()) for p in key.split(",")]
        if not all(p in TRL_DPO_LOSSES for p in parts):
            raise UsageError(f"--loss {name}: only TRL DPO loss types combine ({', '.join(TRL_DPO_LOSSES)})")
        return Loss(",".join(parts), "dpo", tuple(parts))
    if key in LOSSES:
        return LOSSES[key]
    if key in TRL_DPO_LOSSES:
        return Loss(key, "dpo", (key,))
    if key in TRL_KTO_LOSSES:
        return Loss(key, "kto", (key,), check=_kl_needs_two if key == "kto" else None)
    known = ", ".join([*LOSSES, *[n for n in TRL_DPO_LOSSES + TRL_KTO_LOSSES if n not in ("kto",)]])
    raise UsageError(f"--loss: unknown loss '{name}' (known: {known})")


def _trl_part(name: str) -> str:
    """One part of a combined --loss as TRL's loss_type: a table entry TRL computes by its TRL name."""
    loss = LOSSES.get(name)
    combinable = loss is not None and loss.trainer == "dpo" and loss.own_formula is None
    return loss.loss_type[0] if combinable and len(loss.loss_type) == 1 else name
