"""The miniature world's captioner: the project's tiny LLaVA (models/tiny_llava.py), its vision tower
initialised from the trained ranker's image encoder, trained by SFT on biased captions.

The result is an ordinary LLaVA folder (save_pretrained of LlavaForConditionalGeneration and its
LlavaProcessor) that `clipdpo caption / train / eval-amber --model DIR` load like llava-hf checkpoints.
Training rows are encoded by the project's one conversation encoding (models/conversation.py), so SFT
sees exactly the prompt and completion tokens that generation and DPO use.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from typing import Any

from clipdpo_mini.world import PROMPTS, MiniScene, biased_caption, tokenizer_corpus

TRAINED_MARK = "mini_sft.json"  # written last: the folder holds a finished SFT run
LM_SIZES: dict[str, int] = {"hidden_size": 64, "num_layers": 2, "num_heads": 4}


def copy_image_tower(visual: Any, tower: Any) -> None:
    """Copy an open_clip VisionTransformer's weights into a transformers CLIP vision tower of the same
    shape (conv1 -> patch embedding, fused in_proj -> q/k/v, ln_pre/ln_post -> pre/post layer norms).
    The tower must use exact GELU (open_clip's default activation)."""
    import torch

    vm = getattr(tower, "vision_model", tower)
    emb = vm.embeddings
    with torch.no_grad():
        emb.patch_embedding.weight.copy_(visual.conv1.weight)
        emb.class_embedding.copy_(visual.class_embedding)
        emb.position_embedding.weight.copy_(visual.positional_embedding)
        _copy_ln(vm.pre_layrnorm, visual.ln_pre)
        _copy_ln(vm.post_layernorm, visual.ln_post)
        blocks = visual.transformer.resblocks
        if len(blocks) != len(vm.encoder.layers):
            raise ValueError(f"{len(blocks)} open_clip blocks for {len(vm.encoder.layers)} tower layers")
        for block, layer in zip(blocks, vm.encoder.layers, strict=True):
            att = layer.self_attn
            for part, w, b in zip(
                (att.q_proj, att.k_proj, att.v_proj),
                block.attn.in_proj_weight.chunk(3),
                block.attn.in_proj_bias.chunk(3),
                strict=True,
            ):
                part.weight.copy_(w)
                part.bias.copy_(b)
            att.out_proj.weight.copy_(block.attn.out_proj.weight)
            att.out_proj.bias.copy_(block.attn.out_proj.bias)
            _copy_ln(layer.layer_norm1, block.ln_1)
            _copy_ln(layer.layer_norm2, block.ln_2)
            layer.mlp.fc1.weight.copy_(block.mlp.c_fc.weight)
            layer.mlp.fc1.bias.copy_(block.mlp.c_fc.bias)
            layer.mlp.fc2.weight.copy_(block.mlp.c_proj.weight)
            layer.mlp.fc2.bias.copy_(block.mlp.c_proj.bias)


def _copy_ln(dst: Any, src: Any) -> None:
    dst.weight.copy_(src.weight)
    dst.bias.copy_(src.bias)


def sft_prompts() -> list[str]:
    """The prompts SFT trains on: the world's five caption prompts (AMBER's description query among them)."""
    return list(PROMPTS)


def sft_rows(manifest: list[dict[str, Any]], seed: int, bias: float) -> list[tuple[str, str, str]]:
    """(image, prompt, biased caption) per scene; the caption and prompt are fixed by seed and scene."""
    prompts = sft_prompts()
    rows = []
    for row in manifest:
        scene = MiniScene.from_json(row["scene"])
        rng = random.Random(f"mini-sft:{seed}:{scene.index}")
        rows.append((row["image"], rng.choice(prompts), biased_caption(scene, rng, bias)))
    return rows


def train_captioner(
    manifest: list[dict[str, Any]], ranker: str | None, out_dir: str, *, seed: int = 0, steps: int = 800,
    batch_size: int = 32, lr: float = 2e-3, vision_lr_scale: float = 0.1, bias: float = 0.7,
    log_every: int = 100,
) -> str:  # fmt: skip
    """Build the tiny LLaVA in out_dir (seeded), copy the ranker's image tower (unless ranker is None),
    train it on the manifest's biased captions (loss on the completion tokens only), save it there."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from clipdpo_cli.models.conversation import ChatEncoding
    from clipdpo_cli.models.hub import quiet_transformers
    from clipdpo_mini.models.tiny_llava import build_tiny_llava

    build_tiny_llava(
        out_dir, **LM_SIZES, vision_hidden_size=64, vision_layers=3, image_size=32, patch_size=8,
        vision_hidden_act="gelu", vision_feature_layer=-1, tokenizer_corpus=tokenizer_corpus(), seed=seed,
    )  # fmt: skip
    model = AutoModelForImageTextToText.from_pretrained(out_dir)
    processor = AutoProcessor.from_pretrained(out_dir)
    tower = model.model.vision_tower
    if ranker is not None:
        from clipdpo_cli.models.clip import load_clip

        copy_image_tower(load_clip(ranker, device="cpu").model.visual, tower)
    rows = sft_rows(manifest, seed, bias)
    encoded = encode_rows(ChatEncoding(processor), rows)
    vision = {id(p) for p in tower.parameters()}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in vision], "lr": lr},
        {"params": list(tower.parameters()), "lr": lr * vision_lr_scale},
    ]
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model.train()
    for step in range(1, steps + 1):
        idx = torch.tensor(rng.sample(range(len(rows)), min(batch_size, len(rows))))
        enc = {k: v[idx] for k, v in encoded.items()}
        width = int(enc["attention_mask"].sum(dim=1).max())  # rows are flushed left
        enc = {k: v if k == "pixel_values" else v[:, :width] for k, v in enc.items()}
        loss = completion_loss(model, enc)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if log_every and (step % log_every == 0 or step == steps):
            print(f"captioner seed {seed} step {step}/{steps} loss {loss.item():.4f}", file=sys.stderr,
                  flush=True)  # fmt: skip
    model.eval()
    with quiet_transformers():
        model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    info = {"seed": seed, "steps": steps, "batch_size": batch_size, "lr": lr,
            "vision_lr_scale": vision_lr_scale, "bias": bias, "scenes": len(rows), "ranker": ranker,
            "final_loss": round(loss.item(), 4)}  # fmt: skip
    with open(os.path.join(out_dir, TRAINED_MARK), "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=1)
    return out_dir


def encode_rows(encoding: Any, rows: list[tuple[str, str, str]], chunk: int = 256) -> dict[str, Any]:
    """All (image, prompt, caption) rows encoded once by the conversation encoding, right-padded to one
    width: input_ids, attention_mask, completion_mask, pixel_values."""
    import torch
    import torch.nn.functional as F

    from clipdpo_cli.io.images import load_image

    parts = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        enc = encoding.unpaired_batch(
            [load_image(p) for p, _, _ in part], [q for _, q, _ in part], [c for _, _, c in part],
            calculate_kl=False,
        )  # fmt: skip
        parts.append({k: enc[k] for k in ("input_ids", "attention_mask", "completion_mask", "pixel_values")})
    width = max(p["input_ids"].shape[1] for p in parts)
    pad_id = encoding.tokenizer.pad_token_id
    out = {}
    for key in ("input_ids", "attention_mask", "completion_mask"):
        fill = pad_id if key == "input_ids" else 0
        out[key] = torch.cat([F.pad(p[key], (0, width - p[key].shape[1]), value=fill) for p in parts])
    out["pixel_values"] = torch.cat([p["pixel_values"] for p in parts])
    return out


def completion_loss(model: Any, enc: dict[str, Any]) -> Any:
    """Mean next-token cross-entropy over the completion tokens of a ChatEncoding batch."""
    import torch.nn.functional as F

    logits = model(
        input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=enc["pixel_values"]
    ).logits
    target = enc["input_ids"][:, 1:]
    mask = enc["completion_mask"][:, 1:].bool()
    return F.cross_entropy(logits[:, :-1][mask], target[mask])
