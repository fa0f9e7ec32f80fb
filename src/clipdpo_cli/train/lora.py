"""--lora: the peft adapter's config, on the attention and MLP projections of the language model only."""

from __future__ import annotations

from typing import Any

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.train.settings import TrainSettings, train_projector

LORA_LEAVES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def prepare_lora(model: Any, s: TrainSettings, trained: list[str], deepspeed: bool) -> Any:
    """The peft LoraConfig of a --lora run; the vision parts it trains in full (`trained`, from parts.freeze)
    are its modules_to_save and, outside DeepSpeed (which keeps its own), get fp32 master weights."""
    from peft import LoraConfig

    if (s.train_vision_tower or train_projector(s)) and not trained:
        raise InputError(f"--lora: cannot find the vision parts of {type(model).__name__} to train")
    if not deepspeed:
        for name in trained:
            model.get_submodule(name).float()
    return LoraConfig(
        r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=0.05, task_type="CAUSAL_LM",
        target_modules=lora_targets(model), modules_to_save=trained or None,
    )  # fmt: skip


def lora_targets(model: Any) -> str:
    """A peft target regex: the attention and MLP projections of the model's language model only.

    The language model is what `get_decoder()` returns, wherever the family keeps it (LLaVA, Qwen2-VL and
    PaliGemma: model.language_model; Idefics3 / SmolVLM: model.text_model); the vision tower and the
    projector are left out. No projection found is a one-line error naming the linear modules there are.
    """
    import re

    import torch

    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    prefix = next((name for name, module in model.named_modules() if module is decoder), None)
    if not prefix:
        raise InputError(f"--lora: cannot find the language model of {type(model).__name__}")
    linear = [n for n, m in decoder.named_modules() if isinstance(m, torch.nn.Linear)]
    found = sorted({n.rsplit(".", 1)[-1] for n in linear})
    leaves = [leaf for leaf in LORA_LEAVES if leaf in found]
    if not leaves:
        raise InputError(
            f"--lora: no {'/'.join(LORA_LEAVES)} modules in {prefix} ({type(decoder).__name__}); "
            f"its linear modules: {', '.join(found) or 'none'}"
        )
    return rf"{re.escape(prefix)}\..*\.({'|'.join(leaves)})"
