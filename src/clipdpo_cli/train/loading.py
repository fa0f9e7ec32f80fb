"""The models and processor a run loads: the policy, a frozen reference, the processor, each in its dtype
and on its device (the same name rules as every other command: models/hub.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import InputError, UsageError


@dataclass(frozen=True)
class WeightDtypes:
    """The dtypes a run loads its weights in: `policy`, the model the optimizer updates (fp32 master weights
    outside DeepSpeed, which keeps its own; the LoRA base, which no optimizer updates, in the compute
    precision), and `frozen`, every model no optimizer updates (the live reference, `ref-logps`)."""

    compute: Any
    policy: Any
    frozen: Any


def weight_dtypes(precision: str, lora: bool = False, deepspeed: bool = False) -> WeightDtypes:
    """From --precision (training's: auto is bf16 on a GPU that has it, fp32 on CPU: CPU runs stay fp32)."""
    import torch

    from clipdpo_cli.models.device import torch_dtype
    from clipdpo_cli.train.settings import training_precision

    compute = torch_dtype(training_precision(precision))
    policy = compute if (lora or deepspeed) else torch.float32
    return WeightDtypes(compute=compute, policy=policy, frozen=compute)


def load_device(config: Any) -> Any:
    """Where this process's models load straight to: its GPU (a DDP rank's own), or None (the CPU; under
    DeepSpeed, which places and partitions them itself)."""
    if config.deepspeed:
        return None
    device = config.device
    return device if device.type == "cuda" else None


def load_policy(name: str, dtype: Any = None, device: Any = None) -> Any:
    """The LVLM to train (by default fp32: master weights), by the same name rules as every other command;
    loaded straight to `device` when given (no CPU copy first)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from clipdpo_cli.models.hub import load_pretrained, resolve_name

    placed = {"device_map": device} if device is not None else {}
    model = load_pretrained(
        AutoModelForImageTextToText.from_pretrained,
        resolve_name(name, "model"),
        "model",
        dtype=dtype or torch.float32,
        **placed,
    )
    if not getattr(model.config, "_name_or_path", ""):
        raise InputError(
            f"model '{name}' has no name or path to reload the reference from; save it to a directory"
        )
    return model


def load_reference(name: str, dtype: Any, device: Any = None) -> Any:
    """A frozen LVLM (the live reference, `ref-logps`'s model): in `dtype`, requires_grad off, eval mode."""
    from transformers import AutoModelForImageTextToText

    from clipdpo_cli.models.hub import load_frozen, resolve_name

    path = resolve_name(name, "model")
    return load_frozen(AutoModelForImageTextToText.from_pretrained, path, "model", dtype, device)


def load_processor(name: str, chat_template: str | None = None, max_pixels: int | None = None) -> Any:
    """The model's processor (as every LVLM command loads it), with a pad token for batching."""
    from clipdpo_cli.models.lvlm import load_lvlm_processor

    processor = load_lvlm_processor(
        name, chat_template, max_pixels, why=" (it is saved with the trained model)"
    )
    tokenizer = processor.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return processor


def text_max_length(max_text: int | None) -> int | None:
    """`--max-length`: text tokens per row (each row's image tokens come on top and are never cut)."""
    if max_text is not None and max_text < 1:
        raise UsageError("--max-length must be at least 1 (or 'none')")
    return max_text


def deepspeed_comm_ready() -> None:
    """Give DeepSpeed's communication layer the process group accelerate already started.

    On CPU, accelerate starts torch.distributed itself (gloo) and DeepSpeed's own layer stays uninitialised,
    zero.Init (run by from_pretrained under ZeRO-3) would size its batch for a world of 1 process.
    """
    import deepspeed

    deepspeed.init_distributed(auto_mpi_discovery=False)
