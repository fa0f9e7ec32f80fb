"""MobileVLM (V2 and v1), the paper's own models, as transformers classes: mtgv/MobileVLM_V2-1.7B / -3B / -7B.

The official checkpoints declare `model_type: mobilevlm`, which transformers does not know, and carry no
processor or chat template. `register()` makes transformers' Auto classes load them (by Hub id or folder)
as MobileVLMConfig, MobileVLMForConditionalGeneration (AutoModelForImageTextToText) and MobileVLMProcessor
(AutoProcessor); clipdpo calls it before loading any model (models/hub.py `load_pretrained`), so callers
need no special case. Importing this package imports nothing heavy; `register()` imports transformers.

    >>> register()                                                             # doctest: +SKIP
    >>> AutoModelForImageTextToText.from_pretrained("mtgv/MobileVLM_V2-1.7B")   # doctest: +SKIP
"""

from __future__ import annotations

_registered = False


def register() -> None:
    """Register the MobileVLM config, model, processor and official weight names with transformers (once)."""
    global _registered
    if _registered:
        return
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
    from transformers.conversion_mapping import register_checkpoint_conversion_mapping
    from transformers.core_model_loading import WeightRenaming

    from clipdpo_cli.models.mobilevlm.configuration import MobileVLMConfig
    from clipdpo_cli.models.mobilevlm.modeling import OFFICIAL_KEYS, MobileVLMForConditionalGeneration
    from clipdpo_cli.models.mobilevlm.processing import MobileVLMProcessor

    AutoConfig.register(MobileVLMConfig.model_type, MobileVLMConfig, exist_ok=True)
    AutoModelForImageTextToText.register(MobileVLMConfig, MobileVLMForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(MobileVLMConfig, MobileVLMProcessor, exist_ok=True)
    # Keyed by our class name, not by model_type: the official MobileLlamaForCausalLM shares the model_type.
    register_checkpoint_conversion_mapping(
        MobileVLMForConditionalGeneration.__name__,
        [WeightRenaming(source, target) for source, target in OFFICIAL_KEYS],
        overwrite=True,
    )
    _registered = True
