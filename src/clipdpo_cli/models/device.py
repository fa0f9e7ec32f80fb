"""Device and precision: one vocabulary and one resolver for every model-backed command.

"Precision" names one of three things, and each option's help says which (`Use`):

  - `Use.weights` (`--dtype`: LVLM / LLM): the dtype the weights are loaded in; auto is bf16 on a GPU that
    has it, fp16 on other GPUs, fp32 on CPU.
  - `Use.autocast` (`--precision` of the CLIP scorers): the weights stay fp32 and the forward pass runs
    under torch.autocast in bf16 / fp16. No auto: a score should not change with the machine it ran on.
  - `Use.training` (train's `--precision`): mixed-precision training (TRL's bf16 / fp16 flags), master
    weights fp32; auto is bf16 on a GPU that has it, else fp32 (never fp16 by itself).

The values are one enum, `Precision`; `resolve_precision(value, use, device)` turns `auto` into a concrete
choice and checks that the choice is allowed for that use; `HELP[use]` is the help of its option.
`resolve_device` does the same for `--device`.
"""

from __future__ import annotations

import enum
from typing import Any

from clipdpo_cli.io.errors import UsageError


class Precision(str, enum.Enum):
    """fp32 / bf16 / fp16, or auto (resolved per `Use`)."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Use(str, enum.Enum):
    """What a precision option sets (see the module docstring)."""

    weights = "weights"
    autocast = "autocast"
    training = "training"


PRECISIONS = ("fp32", "bf16", "fp16")
# the choices each use accepts; the option's help lists the same
CHOICES: dict[Use, tuple[str, ...]] = {
    Use.weights: ("auto", *PRECISIONS),
    Use.autocast: PRECISIONS,
    Use.training: ("auto", *PRECISIONS),
}
# the help of each use's option, so that every command says the same of it
HELP: dict[Use, str] = {
    Use.weights: "LVLM/LLM weight dtype (weights loaded in it): auto (bf16 on a GPU that has it, else fp16; "
    "fp32 on CPU), fp32, bf16, fp16.",
    Use.autocast: "CLIP scorer compute precision: weights stay fp32, the forward pass autocasts to bf16/fp16 "
    "(use bf16 on GPU), or fp32.",
    Use.training: "Training mixed precision (master weights fp32): auto (bf16 on a GPU that has it, else "
    "fp32), fp32, bf16, fp16.",
}
_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


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


def _bf16_gpu() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def resolve_precision(value: str | Precision, use: Use, device: Any = None) -> Precision:
    """The concrete precision (fp32 / bf16 / fp16) of an option value for `use` on `device`.

    `device` (a torch.device) decides auto for `Use.weights`; training's auto looks at the visible GPUs
    (each process of a distributed run has one). A value the use does not accept is a UsageError.
    """
    name = value.value if isinstance(value, Precision) else _ALIASES.get(str(value), str(value))
    if name not in CHOICES[use]:
        raise UsageError(f"{use.value} precision must be one of {', '.join(CHOICES[use])}, got '{name}'")
    if name != "auto":
        return Precision(name)
    if use is Use.weights:
        if device is not None and getattr(device, "type", str(device)) == "cuda":
            return Precision.bf16 if _bf16_gpu() else Precision.fp16
        return Precision.fp32
    return Precision.bf16 if _bf16_gpu() else Precision.fp32


def torch_dtype(precision: str | Precision) -> Any:
    """The torch dtype of a concrete precision (fp32, bf16, fp16 or their torch names)."""
    import torch

    name = precision.value if isinstance(precision, Precision) else _ALIASES.get(precision, precision)
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in table:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    return table[name]


def weights_dtype(value: str | Precision, device: Any) -> Any:
    """The torch dtype LVLM / LLM weights are loaded in (`--dtype`, Use.weights)."""
    return torch_dtype(resolve_precision(value, Use.weights, device))


def autocast(device: Any, precision: str | Precision) -> Any:
    """A context manager: autocast to bf16/fp16 on the device, or nothing for fp32."""
    import contextlib

    import torch

    concrete = resolve_precision(precision, Use.training, device)  # autocast's choices, plus auto
    if concrete is Precision.fp32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch_dtype(concrete))
