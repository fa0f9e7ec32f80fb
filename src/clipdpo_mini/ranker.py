"""The miniature world's CLIP ranker: a tiny open_clip CLIP trained contrastively on true captions.

It is written as an open_clip local-dir checkpoint (open_clip_config.json + open_clip_model.safetensors),
trained on the model `load_clip("local-dir:DIR")` returns, so `clipdpo score --model local-dir:DIR` scores
with exactly what was trained. Its image tower has the shape of the tiny LLaVA's vision tower
(captioner.py copies it there).
"""

from __future__ import annotations

import copy
import json
import os
import random
import sys
from collections.abc import Sequence
from typing import Any

TRAINED_MARK = "mini_ranker.json"  # written last: the folder holds a finished training run
# The text tower reads a byte-level BPE tokenizer learnt on the world's words (models/tokenizer.py
# build_clip_tokenizer), saved in the checkpoint folder, where open_clip loads a local-dir model's
# `hf_tokenizer_name` tokenizer from: 373 token rows instead of open_clip's 49,408 (12.6 MB -> 1 MB).
TOKENIZER_VOCAB = 512  # the BPE trainer's ceiling; the world's words need 373 (len of the tokenizer)
RANKER_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 3, "width": 64, "head_width": 16, "mlp_ratio": 2.0,
                   "patch_size": 8},
    "text_cfg": {"context_length": 77, "width": 64, "heads": 4, "layers": 2,
                 "hf_tokenizer_name": "clipdpo-mini-bpe"},  # vocab_size: the tokenizer's length
}  # fmt: skip


def ranker_tokenizer() -> Any:
    """The ranker's text tokenizer (deterministic: learnt from the world's fixed corpus)."""
    from clipdpo_mini.models.tokenizer import build_clip_tokenizer
    from clipdpo_mini.world import tokenizer_corpus

    return build_clip_tokenizer(TOKENIZER_VOCAB, corpus=tokenizer_corpus())


def ranker_config(tokenizer: Any) -> dict[str, Any]:
    """RANKER_CONFIG with the text tower's vocabulary sized to `tokenizer`."""
    config = copy.deepcopy(RANKER_CONFIG)
    config["text_cfg"]["vocab_size"] = len(tokenizer)
    return config


def write_ranker(out_dir: str, model: Any = None, seed: int = 0) -> str:
    """Write `model` (default: a random one of RANKER_CONFIG, seeded) with its tokenizer to out_dir, as an
    open_clip local-dir checkpoint; return 'local-dir:DIR'."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    os.makedirs(out_dir, exist_ok=True)
    tokenizer = ranker_tokenizer()
    config = ranker_config(tokenizer)
    if model is None:
        torch.manual_seed(seed)
        model = open_clip.CLIP(**copy.deepcopy(config))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out_dir, "open_clip_model.safetensors"))
    tokenizer.save_pretrained(out_dir)
    with open(os.path.join(out_dir, "open_clip_config.json"), "w", encoding="utf-8") as fh:
        json.dump({"model_cfg": config, "preprocess_cfg": {}}, fh, indent=2)
    return f"local-dir:{os.path.abspath(out_dir)}"


def pixel_tensor(paths: Sequence[str], preprocess: Any) -> Any:
    """[n, 3, H, W] preprocessed images, decoded by the project's one image opener."""
    import torch

    from clipdpo_cli.io.images import load_image

    return torch.stack([preprocess(load_image(p)) for p in paths])


def train_ranker(
    manifest: list[dict[str, Any]], out_dir: str, *, steps: int = 800, batch_size: int = 128,
    lr: float = 1e-3, seed: int = 0, log_every: int = 100,
) -> str:  # fmt: skip
    """Train contrastively (symmetric InfoNCE, in-batch negatives) on the manifest's true captions."""
    import torch
    import torch.nn.functional as F

    from clipdpo_cli.models.clip import load_clip

    name = write_ranker(out_dir, seed=seed)
    clip = load_clip(name, device="cpu")
    model = clip.model.train()
    pixels = pixel_tensor([r["image"] for r in manifest], clip.preprocess)
    tokens = clip.tokenizer([r["caption"] for r in manifest])
    length = int(tokens.argmax(dim=-1).max()) + 1  # open_clip pools at the EOT (argmax) token
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    n = len(manifest)
    for step in range(1, steps + 1):
        idx = torch.tensor(rng.sample(range(n), min(batch_size, n)))
        img = F.normalize(model.encode_image(pixels[idx]), dim=-1)
        txt = F.normalize(_encode_text(model, tokens[idx], length), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T
        target = torch.arange(len(idx))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.6052)
        if log_every and (step % log_every == 0 or step == steps):
            print(f"ranker step {step}/{steps} loss {loss.item():.4f}", file=sys.stderr, flush=True)
    model.eval()
    name = write_ranker(out_dir, model)
    with open(os.path.join(out_dir, TRAINED_MARK), "w", encoding="utf-8") as fh:
        json.dump({"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "scenes": n,
                   "final_loss": round(loss.item(), 4)}, fh, indent=1)  # fmt: skip
    return name


def _encode_text(model: Any, tokens: Any, length: int) -> Any:
    """encode_text on the first `length` positions (causal mask: identical to the full context)."""
    from clipdpo_cli.models.clip import _ShortContext

    return type(model).encode_text(_ShortContext(model, length), tokens[:, :length])


def insertion_accuracy(ranker: str, manifest: list[dict[str, Any]], seed: int = 0) -> float:
    """Share of scenes whose true caption scores above the same caption with one absent object inserted
    (the ranker's preference accuracy on this world's hallucination type)."""
    import torch

    from clipdpo_cli.models.clip import load_clip

    clip = load_clip(ranker, device="cpu")
    rng = random.Random(seed)
    trues = [row["caption"] for row in manifest]
    falses = [insertion_caption(row, rng) for row in manifest]
    img = clip.encode_pixels(pixel_tensor([r["image"] for r in manifest], clip.preprocess))
    with torch.inference_mode():
        a = (img * clip.encode_texts(trues)).sum(-1)
        b = (img * clip.encode_texts(falses)).sum(-1)
    return float((a > b).float().mean())


def insertion_caption(row: dict[str, Any], rng: random.Random) -> str:
    """A manifest row's true caption with one object of an absent kind (random colour) inserted."""
    from clipdpo_mini.world import COLOURS, KINDS, MiniScene, caption_of

    scene = MiniScene.from_json(row["scene"])
    pairs = [(i.colour, i.kind) for i in scene.items]
    absent = rng.choice([k for k in KINDS if k not in scene.kinds])
    pairs.insert(rng.randint(0, len(pairs)), (rng.choice(sorted(COLOURS)), absent))
    return caption_of(pairs)
