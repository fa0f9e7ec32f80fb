"""A shrunken MobileVLM-v2 checkpoint in the OFFICIAL layout (mtgv/MobileVLM_V2-1.7B as published).

config.json is the published one (mobilevlm_v2/facts.json) with the sizes cut, plus one key the official
file does not need: `vision_config`, the shrunken CLIP tower's config (the real tower is the published
openai/clip-vit-large-patch14-336, known without a download). The weights are a `pytorch_model.bin` with the
names the official code saves (`model.layers.*`, `model.vision_tower.vision_tower.vision_model.*`,
`model.mm_projector.mlp.mlp.0.*`, ...). There is no processor config, no image-processor config and no chat
template, as on the Hub: MobileVLMProcessor builds them. `with_tower=False` leaves the CLIP tower's weights
out (MobileVLM v1's published layout) and names a folder holding them as `mm_vision_tower`.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

SIZES = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 4, "mm_hidden_size": 32,
}  # fmt: skip
TINY_TOWER = {
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
    "image_size": 336, "patch_size": 14, "projection_dim": 32,
}  # fmt: skip


def official_config(tokenizer: Any, projector: str = "ldpnetv2", **extra: Any) -> dict[str, Any]:
    """The published config.json of mtgv/MobileVLM_V2-1.7B, cut to SIZES, for this tokenizer."""
    from clipdpo_mini.models.families import facts

    config = dict(facts("mobilevlm_v2")["config"])
    config.update(SIZES, vocab_size=len(tokenizer), mm_projector_type=projector, vision_config=TINY_TOWER)
    config.update(extra)
    return config


def official_state_dict(model: Any, copy: bool = True) -> dict[str, Any]:
    """The model's weights under the official names (the reverse of modeling.OFFICIAL_KEYS); `copy` False
    shares the model's tensors (benchmarks/real_size.py: no second copy of 3 GB)."""
    from clipdpo_cli.models.mobilevlm.modeling import OFFICIAL_KEYS

    out = {}
    for key, value in model.state_dict().items():
        for official, ours in OFFICIAL_KEYS:
            if key.startswith(ours):
                key = re.sub(r"\\(.)", r"\1", official.lstrip("^")) + key[len(ours) :]
                break
        out[key] = value.detach().clone().contiguous() if copy else value
    return out


def build_mobilevlm(out_dir: str, projector: str = "ldpnetv2", with_tower: bool = True) -> str:
    """Write the shrunken official-layout checkpoint to `out_dir` (see the module doc)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from clipdpo_cli.models.mobilevlm import register
    from clipdpo_cli.models.mobilevlm.configuration import MobileVLMConfig
    from clipdpo_cli.models.mobilevlm.modeling import MobileVLMForConditionalGeneration
    from clipdpo_mini.models.families import facts, llama2_tokenizer

    register()
    os.makedirs(out_dir, exist_ok=True)
    tok = llama2_tokenizer([], pad_token="<unk>")
    extra: dict[str, Any] = {}
    if not with_tower:  # the tower lives in its own folder, named by mm_vision_tower
        tower_dir = os.path.join(out_dir, "clip-tower")
        torch.manual_seed(1)
        CLIPVisionModel(CLIPVisionConfig(**TINY_TOWER)).save_pretrained(tower_dir)
        extra["mm_vision_tower"] = tower_dir
    config = official_config(tok, projector, **extra)
    torch.manual_seed(0)
    model = MobileVLMForConditionalGeneration(MobileVLMConfig(**config)).eval()
    weights = official_state_dict(model)
    if not with_tower:
        weights = {k: v for k, v in weights.items() if not k.startswith("model.vision_tower.")}
    torch.save(weights, os.path.join(out_dir, "pytorch_model.bin"))
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as fh:
        json.dump(config, fh, indent=2, sort_keys=True)
    with open(os.path.join(out_dir, "generation_config.json"), "w", encoding="utf-8") as fh:
        json.dump(facts("mobilevlm_v2")["generation_config"], fh, indent=2)
    tok.save_pretrained(out_dir)
    return out_dir
