"""ClipdpoDPOTrainer: TRL's DPOTrainer with the losses TRL does not compute (a Loss's own_formula: cDPO) and
training on precomputed reference log-probs of vision data (no reference model loaded)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def no_reference_load() -> Iterator[None]:
    """While DPOTrainer initialises, make its 'load the reference from the policy's path' step a no-op.

    TRL refuses precompute_ref_log_probs for vision data and otherwise always loads a reference copy. With
    reference log-probs already in the batches we need neither: this keeps the copy from ever being loaded.
    """
    import trl.trainer.dpo_trainer as dpo_module

    original = dpo_module.create_model_from_path
    dpo_module.create_model_from_path = lambda *a, **k: None
    try:
        yield
    finally:
        dpo_module.create_model_from_path = original


def record_rewards(trainer: Any, chosen: Any, rejected: Any, chosen_ratio: Any, rejected_ratio: Any) -> None:
    """The reward and log-prob metrics DPOTrainer logs, for a loss computed by its own formula."""
    mode = "train" if trainer.model.training else "eval"
    gather = trainer.accelerator.gather
    rewards_c, rewards_r = trainer.beta * chosen_ratio.detach(), trainer.beta * rejected_ratio.detach()
    metrics = trainer._metrics[mode]
    metrics["rewards/chosen"].append(gather(rewards_c).mean().item())
    metrics["rewards/rejected"].append(gather(rewards_r).mean().item())
    metrics["rewards/accuracies"].append(gather((rewards_c > rewards_r).float()).mean().item())
    metrics["rewards/margins"].append(gather(rewards_c - rewards_r).mean().item())
    metrics["logps/chosen"].append(gather(chosen.detach()).mean().item())
    metrics["logps/rejected"].append(gather(rejected.detach()).mean().item())


def clipdpo_dpo_trainer() -> type:
    """DPOTrainer with the losses TRL does not compute (a Loss's own_formula: cDPO) and training on
    precomputed reference log-probs of vision data."""
    import torch
    from trl import DPOTrainer
    from trl.models.utils import disable_gradient_checkpointing
    from trl.trainer.utils import use_adapter

    from clipdpo_cli.models.logps import completion_logps, split_pairs

    class ClipdpoDPOTrainer(DPOTrainer):
        def __init__(
            self, *args: Any, own_loss: Any = None, precomputed_ref: bool = False, **kwargs: Any
        ) -> None:
            self.own_loss = own_loss  # per-pair loss(delta, beta, label_smoothing), or None: TRL's
            if not precomputed_ref:
                super().__init__(*args, **kwargs)
                return
            if kwargs.get("ref_model") is not None:
                raise ValueError("precomputed reference log-probs and a reference model exclude each other")
            with no_reference_load():
                super().__init__(*args, **kwargs)
            if self.ref_model is not None:  # pragma: no cover - would mean TRL changed how it loads it
                raise RuntimeError("a reference model was loaded although log-probs are precomputed")
            self.precompute_ref_logps = True  # DPOTrainer then reads ref_*_logps from each batch

        def reference_logps(self, inputs: dict[str, Any]) -> tuple[Any, Any]:
            if self.precompute_ref_logps:
                return inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
            from accelerate.utils import is_peft_model

            with (
                torch.no_grad(),
                disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs),
            ):
                if is_peft_model(self.model) and self.ref_model is None:
                    unwrapped = self.accelerator.unwrap_model(self.model)
                    name = "ref" if "ref" in unwrapped.peft_config else None
                    with use_adapter(unwrapped, adapter_name=name):
                        return split_pairs(completion_logps(self.model, inputs))
                return split_pairs(completion_logps(self.ref_model, inputs))

        def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
            if self.own_loss is None:
                return super()._compute_loss(model, inputs, return_outputs)
            chosen, rejected = split_pairs(completion_logps(model, inputs))
            ref_chosen, ref_rejected = self.reference_logps(inputs)
            chosen_ratio, rejected_ratio = chosen - ref_chosen, rejected - ref_rejected
            loss = self.own_loss(chosen_ratio - rejected_ratio, self.beta, self.label_smoothing).mean()
            record_rewards(self, chosen, rejected, chosen_ratio, rejected_ratio)
            return (loss, None) if return_outputs else loss

    return ClipdpoDPOTrainer
