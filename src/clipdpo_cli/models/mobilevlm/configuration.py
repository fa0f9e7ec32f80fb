"""MobileVLMConfig: the official MobileVLM config.json (a Llama config plus the `mm_*` keys), read as it is.

The official checkpoints (mtgv/MobileVLM_V2-1.7B, -3B, -7B; MobileVLM-1.7B, -3B) store a flat Llama config
with `model_type: mobilevlm` and the vision settings as `mm_*` keys; the CLIP tower's own config is not in the
file but named by `mm_vision_tower`. It is resolved here: a `vision_config` written by clipdpo (a shrunken
fixture, a trained model) wins; the published tower of every official checkpoint,
openai/clip-vit-large-patch14-336, is known without a download; any other name is read from its folder or the
Hub, as the official code does.
"""

from __future__ import annotations

from typing import Any

from transformers import CLIPVisionConfig, LlamaConfig

# openai/clip-vit-large-patch14-336's vision config (the values llava-hf/llava-1.5-7b-hf publishes for the
# same tower; quick_gelu and layer_norm_eps 1e-5 are CLIPVisionConfig's defaults, as in the published file).
KNOWN_VISION_TOWERS: dict[str, dict[str, Any]] = {
    "openai/clip-vit-large-patch14-336": {
        "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
        "image_size": 336, "patch_size": 14, "projection_dim": 768, "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
    },
}  # fmt: skip

PROJECTORS = ("ldpnetv2", "ldpnet")  # MobileVLM V2 (LDPv2) and MobileVLM (LDP)
IMAGE_GRID = 12  # both projectors give a 12x12 grid of image tokens from CLIP-336/14's 24x24 patches


def vision_tower_config(name: str) -> CLIPVisionConfig:
    """The CLIP vision config `mm_vision_tower` names: a known tower, a local folder, or a Hub id."""
    if name in KNOWN_VISION_TOWERS:
        return CLIPVisionConfig(**KNOWN_VISION_TOWERS[name])
    return CLIPVisionConfig.from_pretrained(name)


class MobileVLMConfig(LlamaConfig):
    """A MobileLLaMA / Vicuna (Llama) config with MobileVLM's vision keys, read from the official config.json.

    `vision_config` (clipdpo's addition) holds the CLIP tower's config; `image_placeholder_id` is the id the
    processor writes once per image token (default: `vocab_size`, the first id after the official
    vocabulary, which the processor gives `<image>`).
    """

    model_type = "mobilevlm"
    sub_configs = {"vision_config": CLIPVisionConfig}

    mm_vision_tower: str = "openai/clip-vit-large-patch14-336"
    vision_tower_type: str = "clip"
    mm_vision_select_layer: int = -2
    mm_vision_select_feature: str = "patch"
    mm_projector_type: str = "ldpnetv2"
    mm_hidden_size: int = 1024
    image_aspect_ratio: str = "pad"
    mm_use_im_start_end: bool = False
    mm_use_im_patch_token: bool = False
    vision_config: dict | CLIPVisionConfig | None = None
    image_placeholder_id: int | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        if isinstance(self.vision_config, dict):
            self.vision_config = CLIPVisionConfig(**self.vision_config)
        elif self.vision_config is None:
            self.vision_config = vision_tower_config(self.mm_vision_tower)
        if self.image_placeholder_id is None:
            self.image_placeholder_id = self.vocab_size
        if "rope_scaling" in kwargs and kwargs["rope_scaling"] is None:  # official: null, i.e. no scaling
            del kwargs["rope_scaling"]  # (setting it warns that it is deprecated)
        super().__post_init__(**kwargs)

    def check_vision_settings(self) -> None:
        """ValueError (one line) for official settings this implementation does not cover (checked where the
        model and the processor are built: AutoProcessor would hide a config error behind its fallbacks)."""
        if self.mm_projector_type not in PROJECTORS:
            raise ValueError(
                f"mm_projector_type '{self.mm_projector_type}' is not supported (MobileVLM: "
                f"{', '.join(PROJECTORS)})"
            )
        if self.vision_tower_type != "clip":
            raise ValueError(f"vision_tower_type '{self.vision_tower_type}' is not supported (only 'clip')")
        if self.mm_vision_select_feature != "patch":
            raise ValueError(f"mm_vision_select_feature '{self.mm_vision_select_feature}' is not supported")
        if self.mm_use_im_start_end:
            raise ValueError("mm_use_im_start_end checkpoints are not supported")

    @property
    def image_seq_length(self) -> int:
        """Image tokens per image: 144 (12x12) for both projectors."""
        return IMAGE_GRID * IMAGE_GRID
