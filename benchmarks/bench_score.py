"""Benchmark `score` against a naive per-record loop and open_clip's own batched encoders.

    PYTHONPATH=src python benchmarks/bench_score.py [--images 64] [--captions 5] [--threads 2] [--workers 2]

On a real-size architecture with random weights (open_clip ViT-B-32; speed does not depend on the weights'
values), loaded through the same `load_clip("local-dir:...")` path as a real checkpoint, and JPEG images
of 640x480 on disk, with captions of realistic length (12-40 words), it times in one run:

  1. naive:    for each record, load + preprocess the image, encode it, encode the text (77 tokens), cosine;
  2. score:    the `score` stage (clipdpo_cli.stages.score.score_records) end to end, images decoded in
               DataLoader workers, each image encoded once, texts length-sorted at their own context;
  3. open_clip batched: model.encode_image on the pre-decoded unique images and model.encode_text on all
               texts at the full 77-token context, in batches, no I/O at all;

and a breakdown of where the time goes (decoding, image tower, text tower at 77 tokens vs. short
context), checks that the three give the same scores, and prints the ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time

WORDS = " ".join(
    [
        "a the small large red blue green wooden old young man woman child dog cat bird car bus tree house",
        "street table chair window door sky cloud water river beach mountain field grass flower sitting",
        "standing walking holding looking next to near behind under on in front of with and while bright",
        "dark sunny cloudy busy quiet background foreground wearing shirt hat jacket bag phone book cup",
    ]
).split()


def make_data(folder: str, n_images: int, n_captions: int, seed: int = 0) -> list[dict]:
    """n_images JPEGs (640x480, smooth gradients and noise, like photos decode) and captions for each."""
    import numpy as np
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    words = random.Random(seed)
    records = []
    yy, xx = np.mgrid[0:480, 0:640]
    for i in range(n_images):
        path = os.path.join(folder, f"img{i:03d}.jpg")
        if not os.path.exists(path):
            base = np.stack([(xx * (i + 1)) % 256, (yy * (i + 3)) % 256, (xx + yy + 17 * i) % 256], -1)
            noise = rng.integers(0, 40, size=base.shape)
            Image.fromarray(((base + noise) % 256).astype(np.uint8)).save(path, quality=90)
        for j in range(n_captions):
            text = " ".join(words.choice(WORDS) for _ in range(words.randint(12, 40))).capitalize() + "."
            records.append({"id": f"{i}-{j}", "image": path, "kind": "caption", "text": text})
    return records


CPU = {"naive": 0.0}


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the DataLoader workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, label: str | None = None):
    """Wall seconds and result of fn(); its CPU seconds are kept under `label` (steadier when shared)."""
    cpu, start = cpu_seconds(), time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    if label:
        CPU[label] = cpu_seconds() - cpu
    return wall, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--captions", type=int, default=5)
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--workers", type=int, default=2, help="score's DataLoader decode workers")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dir", default=".bench/score")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    from clipdpo_cli.io.images import load_image
    from clipdpo_cli.models.clip import load_clip
    from clipdpo_cli.stages.score import ScoreSettings, score_records
    from clipdpo_mini.models.tiny_clip import build_tiny_clip

    torch.set_num_threads(args.threads)
    model_dir = os.path.join(args.dir, args.arch)
    name = f"local-dir:{os.path.abspath(model_dir)}"
    if not os.path.exists(os.path.join(model_dir, "open_clip_model.safetensors")):
        name = build_tiny_clip(model_dir, arch=args.arch)
    clip = load_clip(name, device="cpu")
    model, preprocess, tokenizer = clip.model, clip.preprocess, clip.tokenizer
    records = make_data(os.path.join(args.dir, "images"), args.images, args.captions)
    texts = [r["text"] for r in records]
    paths = sorted({r["image"] for r in records})
    n_tokens = (tokenizer(texts).argmax(-1) + 1).float()
    print(
        f"{args.arch} (random weights), {len(paths)} images x {args.captions} captions = "
        f"{len(records)} records; caption tokens mean {n_tokens.mean():.1f}, max {int(n_tokens.max())}; "
        f"torch threads {args.threads}, score workers {args.workers}, batch {args.batch_size}",
        flush=True,
    )

    # 1. naive loop
    def naive() -> list[float]:
        scores = []
        with torch.inference_mode():
            for r in records:
                pixels = preprocess(load_image(r["image"]))[None]
                img = F.normalize(model.encode_image(pixels), dim=-1)
                txt = F.normalize(model.encode_text(tokenizer([r["text"]])), dim=-1)
                scores.append(100 * float(img[0] @ txt[0]))
        return scores

    # 2. the score stage
    options = ScoreSettings(batch_size=args.batch_size, workers=args.workers)

    def stage() -> list[float]:
        return [r["clip_score"] for r in score_records(iter(records), clip, options)]

    # 3. open_clip batched on pre-decoded tensors (decoding is not timed)
    pixels = torch.stack([preprocess(load_image(p)) for p in paths])
    row = {p: i for i, p in enumerate(paths)}
    tokens = tokenizer(texts)

    def image_tower():
        with torch.inference_mode():
            return torch.cat([model.encode_image(pixels[i : i + 64]) for i in range(0, len(pixels), 64)])

    def text_tower_full():
        with torch.inference_mode():
            return torch.cat([model.encode_text(tokens[i : i + 256]) for i in range(0, len(tokens), 256)])

    def batched() -> list[float]:
        img = F.normalize(image_tower(), dim=-1)
        txt = F.normalize(text_tower_full(), dim=-1)
        return [100 * float(img[row[r["image"]]] @ txt[k]) for k, r in enumerate(records)]

    timed(lambda: clip.encode_texts(texts[:8]))  # warm-up
    t_naive, s_naive = timed(naive, "naive")
    t_stage, s_stage = timed(stage, "score")
    t_batched, s_batched = timed(batched, "batched")

    # where the time goes
    t_decode, _ = timed(lambda: [preprocess(load_image(p)) for p in paths])
    t_img, _ = timed(image_tower)
    t_txt77, _ = timed(text_tower_full)
    t_txt_short, short = timed(lambda: clip.encode_texts(texts, batch_size=args.batch_size))
    full = F.normalize(text_tower_full(), dim=-1)

    diff_stage = max(abs(a - b) for a, b in zip(s_stage, s_naive, strict=True))
    diff_batched = max(abs(a - b) for a, b in zip(s_batched, s_naive, strict=True))
    diff_short = float((short - full).abs().max())
    print(f"\n{'method':56s} {'wall s':>7s} {'rec/s':>6s} {'x naive':>8s} {'cpu s':>7s} {'x naive':>8s}")
    for key, label, t in [
        ("naive", "1. naive loop (per record: load, encode image + text)", t_naive),
        ("score", "2. clipdpo score (stage, decode workers, short context)", t_stage),
        ("batched", "3. open_clip batched, pre-decoded, 77-token context", t_batched),
    ]:
        cpu, rate = CPU[key], len(records) / t
        print(f"{label:56s} {t:7.2f} {rate:6.1f} {t_naive / t:7.2f}x {cpu:7.2f} {CPU['naive'] / cpu:7.2f}x")
    print(
        f"\nscore vs open_clip batched: {t_batched / t_stage:.2f}x wall, "
        f"{CPU['batched'] / CPU['score']:.2f}x cpu (>1 means score is faster)"
    )
    print("\nbreakdown (one pass each):")
    print(f"  decode + preprocess {len(paths)} images (1 process): {t_decode:6.2f} s")
    print(f"  image tower, {len(paths)} images:                    {t_img:6.2f} s")
    print(f"  text tower, {len(texts)} texts at 77 tokens:          {t_txt77:6.2f} s")
    speedup = t_txt77 / t_txt_short
    label = f"text tower, same texts, own length, batch {args.batch_size}:"
    print(f"  {label:47s}{t_txt_short:6.2f} s ({speedup:.1f}x)")
    print(
        f"\nmax |score difference| vs naive: score {diff_stage:.2e}, batched {diff_batched:.2e}; "
        f"max |embedding difference| short vs 77-token context {diff_short:.2e}"
    )
    if diff_stage > 1e-3 or diff_batched > 1e-3:
        sys.exit("scores differ")


if __name__ == "__main__":
    main()
