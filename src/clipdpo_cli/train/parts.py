"""Which parts of an LVLM train: the vision tower and the projector, found in every supported family.

The paper fine-tunes with "the frozen vision encoder" (Sec. 5), as LLaVA's code does; LLaMA-Factory freezes
the vision tower (and the projector) by default. `vision_parts(model)` finds them by transformers' own rule
(`get_encoder(modality="image")`: `vision_tower`, `visual`, `vision_model`, ...) and the projector by its
module name in each family:

    LLaVA-1.5 / LLaVA-NeXT / PaliGemma   model.vision_tower      model.multi_modal_projector
    Qwen2-VL / Qwen2.5-VL                model.visual (blocks)   model.visual.merger (inside the encoder)
    SmolVLM / Idefics3                   model.vision_model      model.connector
    MobileVLM-v2 (models/mobilevlm)      model.vision_tower      model.mm_projector

`freeze(model, train_vision_tower, train_projector)` sets `requires_grad` before the model reaches TRL or
DeepSpeed (whose optimizer then holds only what trains); with --lora, `trained_modules` are the parts that
train in full beside the adapter (peft's modules_to_save).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import InputError

# transformers' PreTrainedModel.get_encoder(modality="image") names (for versions without the argument)
ENCODER_NAMES = ("vision_tower", "visual", "vision_model", "vision_encoder", "image_tower")
PROJECTOR_NAMES = ("multi_modal_projector", "mm_projector", "connector", "merger")


@dataclass(frozen=True)
class VisionParts:
    """Qualified module names: the vision tower (without the projector) and the projector."""

    tower: tuple[str, ...]
    projector: tuple[str, ...]


def _image_encoder(model: Any) -> Any:
    base = getattr(model, "model", model)
    for holder in (model, base):
        try:
            encoder = holder.get_encoder(modality="image")
        except (AttributeError, TypeError, ValueError):  # an older transformers: no modality argument
            encoder = next((getattr(holder, n) for n in ENCODER_NAMES if hasattr(holder, n)), None)
        if encoder is not None and encoder is not holder and encoder is not base and encoder is not model:
            return encoder
    return None


def vision_parts(model: Any) -> VisionParts:
    """The vision tower and projector of `model` (an InputError naming its top modules when not found)."""
    encoder = _image_encoder(model)
    names = {id(module): name for name, module in model.named_modules()}
    if encoder is None or id(encoder) not in names:
        top = ", ".join(name for name, _ in getattr(model, "model", model).named_children())
        raise InputError(
            f"cannot find the vision tower of {type(model).__name__} (its modules: {top}); "
            "pass --train-vision-tower to train every weight"
        )
    encoder_name = names[id(encoder)]
    inside = [name for name, _ in encoder.named_children() if name in PROJECTOR_NAMES]
    if inside:  # Qwen2-VL: the merger is the encoder's last child
        tower = tuple(
            f"{encoder_name}.{name}"
            for name, child in encoder.named_children()
            if name not in inside and any(True for _ in child.parameters())
        )
        projector = tuple(f"{encoder_name}.{name}" for name in inside)
    else:
        tower = (encoder_name,)
        projector = tuple(
            name
            for name, _ in model.named_modules()
            if name.rsplit(".", 1)[-1] in PROJECTOR_NAMES and not name.startswith(encoder_name + ".")
        )
    return VisionParts(tower=tower, projector=projector)


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def freeze(model: Any, train_vision_tower: bool, train_projector: bool) -> dict[str, Any]:
    """Turn requires_grad off on the vision tower / projector unless they train; what was decided.

    Returns {"vision_tower": "frozen"|"trained", "projector": ..., "trained_modules": [names of the parts that
    train], "frozen_parameters": count}. A projector that is not found is only an error when it should freeze.
    """
    try:
        parts: VisionParts | None = vision_parts(model)
    except InputError:
        if not (train_vision_tower and train_projector):
            raise
        parts = None  # everything trains: nothing to find
    frozen: tuple[str, ...] = ()
    trained: list[str] = []
    if parts is not None:
        if not train_projector and not parts.projector:
            raise InputError(
                f"cannot find the projector of {type(model).__name__}; pass --train-projector to train it"
            )
        frozen = (() if train_vision_tower else parts.tower) + (() if train_projector else parts.projector)
        trained = [*(parts.tower if train_vision_tower else ())]
        trained += parts.projector if train_projector else ()
    count = 0
    for name, param in model.named_parameters():
        if _under(name, frozen):
            param.requires_grad_(False)
            count += param.ds_numel if hasattr(param, "ds_numel") else param.numel()
    return {
        "vision_tower": "trained" if train_vision_tower else "frozen",
        "projector": "trained" if train_projector else "frozen",
        "trained_modules": trained,
        "frozen_parameters": count,
    }
