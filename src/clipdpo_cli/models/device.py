"""Device and precision choices shared by every model-backed stage."""

from __future__ import annotations

from typing import Any

from clipdpo_cli.io.errors import UsageError

PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_device(name: str = "auto") -> Any:
    """'auto' is cuda when a GPU is visible, else cpu; any torch device string is accepted."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"--device: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA device is visible")
    return device


def resolve_dtype(precision: str) -> Any:
    """torch dtype of 'fp32' | 'bf16' | 'fp16' (also accepts 'float32', 'bfloat16', 'float16', 'auto')."""
    import torch

    table = {
        "fp32": torch.float32, "float32": torch.float32,
        "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
        "fp16": torch.float16, "float16": torch.float16,
    }  # fmt: skip
    if precision not in table:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    return table[precision]


def autocast(device: Any, precision: str) -> Any:
    """A context manager: autocast to bf16/fp16 on the device, or nothing for fp32."""
    import contextlib

    import torch

    if precision in ("fp32", "float32"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=resolve_dtype(precision))
