"""Device and precision: one vocabulary and one resolver for every model-backed command.

"Precision" names one of three things, and each option's help says which (`Use`):

  - `Use.weights` (`--dtype`: LVLM / LLM): the dtype the weights are loaded in; auto is bf16 on a GPU that
    has it, fp16 on other GPUs, fp32 on CPU.
  - `Use.autocast` (`--precision` of the CLIP scorers): the weights stay fp32 and the forward pass runs
    under torch.autocast in bf16 / fp16; auto is bf16 on a GPU that has it, else fp32 (score's default: the
    score records say which precision made them, as a score changes with it in the last digits).
  - `Use.training` (train's `--precision`): mixed-precision training (TRL's bf16 / fp16 flags), master
    weights fp32; auto is bf16 on a GPU that has it, else fp32 (never fp16 by itself).

The values are one enum, `Precision`; `resolve_precision(value, use, device)` turns `auto` into a concrete
choice and checks that the choice is allowed for that use; `HELP[use]` is the help of its option.
`resolve_device` does the same for `--device` (and turns TF32 matrix products on when it picks a GPU).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.io.log import info

if TYPE_CHECKING:
    from clipdpo_cli.io.shard import Shard


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
    Use.autocast: ("auto", *PRECISIONS),
    Use.training: ("auto", *PRECISIONS),
}
# the help of each use's option, so that every command says the same of it
HELP: dict[Use, str] = {
    Use.weights: "LVLM/LLM weight dtype (weights loaded in it): auto (bf16 on a GPU that has it, else fp16; "
    "fp32 on CPU), fp32, bf16, fp16.",
    Use.autocast: "CLIP scorer compute precision: weights stay fp32, the forward pass autocasts to "
    "bf16/fp16, or fp32; auto: bf16 on a GPU that has it, else fp32.",
    Use.training: "Training mixed precision (master weights fp32): auto (bf16 on a GPU that has it, else "
    "fp32), fp32, bf16, fp16.",
}
_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def resolve_device(name: str = "auto", shard: Shard | None = None, quiet: bool = False) -> Any:
    """'auto' is cuda when a GPU is visible, else cpu; any torch device string is accepted.

    With a `shard` (io/shard.py: `--shard K/N` or SLURM's array variables) of more than one, 'auto' puts
    shard K on visible GPU K mod n, and says so on stderr, so that N shards started side by side on one
    node use every GPU instead of all landing on cuda:0 (`quiet`: not said). An explicit device is kept as
    given. A CUDA device gets TF32 matrix products (`enable_tf32`).
    """
    import torch

    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        enable_tf32()
        if shard is None or shard.is_whole:
            return torch.device("cuda")
        count = torch.cuda.device_count()
        index = shard.index % count
        info("", f"{shard.describe()} runs on cuda:{index} (K mod {count} visible GPUs)", quiet)
        return torch.device("cuda", index)
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"--device: {exc}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA device is visible")
        enable_tf32()
    return device


def enable_tf32() -> None:
    """fp32 matrix products and convolutions on TF32 tensor cores (Ampere and later; ~8x an fp32 product).

    Every model pass on a GPU gets it through resolve_device: what still runs in fp32 there (a CLIP scorer
    under --precision fp32, fp32 LVLM weights, norms and softmax under autocast) loses 13 mantissa bits in
    its products, which CLIP scores and sampled captions do not notice at their printed precision.
    """
    import torch

    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True


def _bf16_gpu() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def resolve_precision(value: str | Precision, use: Use, device: Any = None) -> Precision:
    """The concrete precision (fp32 / bf16 / fp16) of an option value for `use` on `device`.

    `device` (a torch.device) decides auto for `Use.weights` and `Use.autocast`; training's auto looks at
    the visible GPUs (each process of a distributed run has one).
    A value the use does not accept is a UsageError.
    """
    name = value.value if isinstance(value, Precision) else _ALIASES.get(str(value), str(value))
    if name not in CHOICES[use]:
        raise UsageError(f"{use.value} precision must be one of {', '.join(CHOICES[use])}, got '{name}'")
    if name != "auto":
        return Precision(name)
    on_gpu = device is not None and getattr(device, "type", str(device)).startswith("cuda")
    if use is Use.weights:
        if on_gpu:
            return Precision.bf16 if _bf16_gpu() else Precision.fp16
        return Precision.fp32
    if use is Use.autocast:
        return Precision.bf16 if on_gpu and _bf16_gpu() else Precision.fp32
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

    concrete = resolve_precision(precision, Use.autocast, device)
    if concrete is Precision.fp32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch_dtype(concrete))


CPU_BATCH = 16  # rows per generate call on CPU (and the floor of nothing: a GPU's is sized below)
GPU_BATCH_MAX = 256
CONTEXT_TOKENS = 1024  # a row's prompt (LLaVA-1.5: 576 image tokens + the template and prompt), rounded up
FREE_SHARE = 0.7  # of the GPU memory free after loading, for the KV cache (the rest: activations, logits)


def kv_bytes_per_token(model: Any) -> int | None:
    """Bytes of KV cache one token takes in `model` (a transformers model: its text config and dtype)."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = getattr(text, "num_hidden_layers", None)
    heads = getattr(text, "num_attention_heads", None)
    hidden = getattr(text, "hidden_size", None)
    if not (layers and heads and hidden):
        return None
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    itemsize = getattr(model, "dtype", None)
    size = itemsize.itemsize if itemsize is not None else 4
    return int(2 * layers * kv_heads * head_dim * size)


def generation_batch_size(model: Any, device: Any, max_new_tokens: int) -> int:
    """caption's --batch-size auto: rows per generate call that fit the device.

    CPU: 16. CUDA: the largest power of two (1..256) of rows whose KV cache of CONTEXT_TOKENS +
    max_new_tokens tokens fits in 70% of the GPU memory free once the model is loaded (LLaVA-1.5-7B bf16,
    128 new tokens: 0.56 GiB a row, 64 rows on an 80 GB card with the 14 GB model on it). A model whose
    config does not say its KV size gets 16.
    """
    import torch

    if getattr(device, "type", str(device)) != "cuda":
        return CPU_BATCH
    per_token = kv_bytes_per_token(model)
    if per_token is None:
        return CPU_BATCH
    free, _total = torch.cuda.mem_get_info(device)
    rows = int(FREE_SHARE * free // (per_token * (CONTEXT_TOKENS + max_new_tokens)))
    rows = max(1, min(GPU_BATCH_MAX, rows))
    return 1 << (rows.bit_length() - 1)
