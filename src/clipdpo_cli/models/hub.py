"""Resolving a transformers model name (Hub id or local directory) with one clear line on failure.

A name is a local directory when one exists at that path; otherwise it is a Hugging Face Hub id, loaded
from the cache or downloaded exactly as transformers does (HF_HUB_OFFLINE=1 and HF_HOME are respected).
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Callable, Iterator
from typing import Any

from clipdpo_cli.io.errors import InputError


def looks_like_path(name: str) -> bool:
    """A name meant as a folder: absolute, relative with ./ or ../, ~, or with more than one '/'."""
    return name.startswith(("/", "./", "../", "~", ".\\")) or name.count("/") > 1 or name in (".", "..")


def offline() -> bool:
    """True under HF_HUB_OFFLINE=1 (or TRANSFORMERS_OFFLINE=1)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("TRANSFORMERS_OFFLINE", "") in ("1", "true")


def resolve_name(name: str, what: str) -> str:
    """The name to hand to from_pretrained: an expanded local path, or the Hub id unchanged."""
    if not name or not name.strip():
        raise InputError(f"no {what} given")
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        return expanded
    if looks_like_path(name):
        raise InputError(f"{what} directory not found: {name}")
    return name


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_failure(name: str, what: str, exc: BaseException) -> InputError:
    """One line saying why `name` could not be loaded."""
    if os.path.isdir(os.path.expanduser(name)):
        return InputError(f"cannot load {what} from {name}: {_first_line(exc)}")
    if offline():
        return InputError(
            f"{what} '{name}' is not a local directory and is not in the Hugging Face cache "
            "(HF_HUB_OFFLINE=1: download it first, or pass a local directory)"
        )
    reason = _first_line(exc)
    return InputError(f"cannot load {what} '{name}' (not a local directory; from the Hub: {reason})")


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No weight-loading progress bars or info chatter from transformers while loading."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_pretrained(loader: Callable[..., Any], name: str, what: str, **kwargs: Any) -> Any:
    """`loader(name, **kwargs)` with hub/path errors turned into InputError."""
    from clipdpo_cli.models.mobilevlm import register

    register()  # MobileVLM's classes, so that the Auto classes know its checkpoints (models/mobilevlm)
    try:
        with quiet_transformers():
            return loader(name, **kwargs)
    except ImportError as exc:  # e.g. SmolVLM2's processor needs the num2words package
        raise InputError(f"cannot load {what} '{name}': {_first_line(exc)}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise load_failure(name, what, exc) from None
    except pickle.UnpicklingError:
        raise pickled_weights(name, what) from None


def pickled_weights(name: str, what: str) -> InputError:
    """One line for a weight file torch.load(weights_only=True) refuses: it pickles more than tensors,
    and loading it would run its code. torch's advice (allowlist it, or weights_only=False) is not given."""
    return InputError(
        f"cannot load {what} '{name}': a weight file in it (pytorch_model.bin / .pt) holds pickled objects "
        "other than tensors, which torch refuses to run; use a copy with safetensors weights from a source "
        "you trust"
    )


def load_frozen(loader: Callable[..., Any], name: str, what: str, dtype: Any, device: Any = None) -> Any:
    """A model whose weights no optimizer updates (an inference pass, a reference, a LoRA base): loaded in
    `dtype`, straight to `device` when it is an accelerator (no CPU copy first), requires_grad off, eval mode.

    `device` None leaves the model where from_pretrained puts it (the CPU; DeepSpeed's ZeRO-3 partitions).
    """
    kwargs: dict[str, Any] = {"dtype": dtype}
    if device is not None and getattr(device, "type", "cpu") != "cpu":
        kwargs["device_map"] = device
    model = load_pretrained(loader, name, what, **kwargs)
    model.requires_grad_(False)
    if device is not None:
        model.to(device)
    return model.eval()


def model_dtype(dtype: str, device: Any) -> Any:
    """torch dtype of LVLM/LLM weights (models.device.weights_dtype: auto is bf16/fp16 on GPU, else fp32)."""
    from clipdpo_cli.models.device import weights_dtype

    return weights_dtype(dtype, device)


def use_chat_template(holder: Any, name: str, chat_template: str | None, why: str = "") -> None:
    """Put --chat-template (file or text) on a tokenizer or processor; InputError if it then has none.

    `why` is added to the message after the file option (e.g. what happens to the template).
    """
    template = read_chat_template(chat_template)
    if template is not None:
        holder.chat_template = template
    if not getattr(holder, "chat_template", None):
        raise InputError(f"model '{name}' has no chat template; pass one with --chat-template FILE{why}")


def pad_left(tokenizer: Any) -> None:
    """Left padding for batched generation, with EOS as the pad token when the tokenizer has none."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def read_chat_template(value: str | None) -> str | None:
    """A Jinja chat template given as a file path or as the template text itself."""
    if value is None:
        return None
    if "{" in value and not os.path.exists(value):  # the template text itself
        return value
    from clipdpo_cli.io.textfiles import read_text_file

    return read_text_file(value, "chat template file")  # a file, or a pipe: --chat-template <(...)
