"""A tiny random open_clip CLIP written to a directory, loadable with `load_clip("local-dir:DIR")`.

The model is the real `open_clip.CLIP` class (ViT image tower, causal text transformer, CLIP BPE tokenizer)
built from a small config, so tests and the demo exercise the same loading and encoding code as a real
checkpoint. `arch="ViT-B-32"` writes a full-size open_clip architecture with random weights instead (for
benchmarks: speed does not depend on the weights' values).
"""

from __future__ import annotations

import json
import os
from typing import Any

TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def build_tiny_clip(
    out_dir: str, *, arch: str | None = None, quick_gelu: bool = False, seed: int = 0,
    preprocess: dict[str, Any] | None = None,
) -> str:  # fmt: skip
    """Write open_clip_config.json and open_clip_model.safetensors to out_dir; return 'local-dir:out_dir'.

    `preprocess` overrides the image preprocessing config (defaults: open_clip's OpenAI mean/std, bicubic).
    """
    import copy

    import open_clip
    import torch
    from safetensors.torch import save_file

    if arch is not None:
        model_cfg = open_clip.get_model_config(arch)
        if model_cfg is None:
            raise ValueError(f"unknown open_clip architecture {arch!r}")
    else:
        model_cfg = copy.deepcopy(TINY_CONFIG)
    if quick_gelu:
        model_cfg["quick_gelu"] = True
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**model_cfg)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out_dir, "open_clip_model.safetensors"))
    config = {"model_cfg": model_cfg, "preprocess_cfg": dict(preprocess or {})}
    with open(os.path.join(out_dir, "open_clip_config.json"), "w", encoding="utf-8") as fh:
        json.dump(config, fh, indent=2)
    return f"local-dir:{os.path.abspath(out_dir)}"
