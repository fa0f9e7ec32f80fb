"""eval-zeroshot: time of re-scoring cached captions vs. captioning and scoring from scratch.

Runs the real pipeline (tiny random LLaVA + tiny random open_clip, CPU by default) on a synthetic image
folder, twice: first with an empty captions cache (LVLM generation + scoring), then again with the cache
filled (scoring only, the LVLM is not loaded). Prints both times and their ratio.

    PYTHONPATH=src python benchmarks/zeroshot_rescore.py --images 48 --max-new-tokens 16
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def make_images(root: str, n: int) -> None:
    from PIL import Image, ImageDraw

    colours = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 60, 220)}
    for i in range(n):
        name, rgb = list(colours.items())[i % 3]
        os.makedirs(os.path.join(root, name), exist_ok=True)
        img = Image.new("RGB", (64, 64), (240, 240, 240))
        ImageDraw.Draw(img).ellipse([8 + i % 7, 8, 50, 50 - i % 5], fill=rgb)
        img.save(os.path.join(root, name, f"{i:04d}.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from clipdpo_cli.eval.zeroshot.datasets import read_image_folder
    from clipdpo_cli.eval.zeroshot.pipeline import EvalSet, ZeroshotSettings, evaluate
    from clipdpo_cli.eval.zeroshot.resources import choose_prompts
    from clipdpo_mini.models.tiny_clip import build_tiny_clip
    from clipdpo_mini.models.tiny_llava import build_tiny_llava

    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "shapes")
        make_images(folder, args.images)
        llava = build_tiny_llava(os.path.join(tmp, "llava"))
        clip = build_tiny_clip(os.path.join(tmp, "clip"))
        cache = os.path.join(tmp, "caps.jsonl")
        data = read_image_folder(folder)
        sets = [EvalSet(data, choose_prompts(data))]

        def run(model: str | None) -> float:
            settings = ZeroshotSettings(
                model=model,
                text_encoder=clip,
                captions=[cache],
                captions_out=cache,
                batch_size=args.batch_size,
                max_new_tokens=args.max_new_tokens,
                device=args.device,
            )
            start = time.perf_counter()
            evaluate(sets, settings, lambda _msg: None)
            return time.perf_counter() - start

        full = run(llava)
        rescore = run(None)
    print(f"images: {args.images}, max_new_tokens: {args.max_new_tokens}, device: {args.device}")
    print(f"caption + score (empty cache): {full:.2f} s")
    print(f"re-score from cache:          {rescore:.2f} s")
    print(f"ratio (caption+score / re-score): {full / rescore:.1f}x")


if __name__ == "__main__":
    sys.exit(main())
