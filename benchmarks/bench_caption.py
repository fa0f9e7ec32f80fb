"""Captions per second of `clipdpo caption` (batched, left-padded) against a per-image generate loop.

Both run the same small random LLaVA (LlavaForConditionalGeneration, CLIP vision tower, Llama LM) on the same
images, prompt and sampling settings; the baseline is the usual one-image-at-a-time transformers loop
(processor.apply_chat_template + model.generate per image). Speed does not depend on the weights' values.

    PYTHONPATH=src python benchmarks/bench_caption.py [--images 32] [--new-tokens 32] [--batch-size 32]
                                                      [--image-size 32] [--hidden 256] [--layers 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=32, help="CLIP input side; (side / 8) ** 2 tokens")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--stage-batch-1", action="store_true", help="also time the stage at batch size 1 (its own overhead)"
    )
    parser.add_argument("--dtype", default="fp32")
    args = parser.parse_args()

    import torch
    from PIL import Image

    from clipdpo_cli.io.stage import StageContext
    from clipdpo_cli.models.lvlm import load_lvlm
    from clipdpo_cli.stages.caption import CaptionSettings, caption_records
    from clipdpo_mini.models.tiny_llava import build_tiny_llava

    with tempfile.TemporaryDirectory(prefix="bench-caption-") as tmp:
        model_dir = build_tiny_llava(
            os.path.join(tmp, "llava"),
            hidden_size=args.hidden,
            num_layers=args.layers,
            num_heads=max(1, args.hidden // 64),
            vision_hidden_size=128,
            vision_layers=2,
            image_size=args.image_size,
            patch_size=8,
        )
        image_dir = os.path.join(tmp, "imgs")
        os.makedirs(image_dir)
        for i in range(args.images):
            color = (i * 37 % 256, i * 91 % 256, i * 53 % 256)
            Image.new("RGB", (96 + i % 5 * 16, 80), color).save(os.path.join(image_dir, f"{i:03d}.png"))
        paths = sorted(os.path.join(image_dir, n) for n in os.listdir(image_dir))
        prompt = "Describe this image in one or two sentences."
        lvlm = load_lvlm(model_dir, device=args.device, dtype=args.dtype)
        model, processor = lvlm.model, lvlm.processor

        def sync() -> None:
            if lvlm.device.type == "cuda":
                torch.cuda.synchronize()

        # warm-up (first-call allocations, kernels)
        lvlm.generate([Image.open(paths[0]).convert("RGB")], [prompt], max_new_tokens=4, seed=[0])

        sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        baseline = []
        for path in paths:
            image = Image.open(path).convert("RGB")
            content = [{"type": "image", "image": image}, {"type": "text", "text": prompt}]
            conv = [{"role": "user", "content": content}]
            inputs = processor.apply_chat_template(
                conv, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
            ).to(lvlm.device, dtype=model.dtype)
            with torch.inference_mode():
                out = model.generate(
                    **inputs, do_sample=True, temperature=0.7, top_p=0.95, max_new_tokens=args.new_tokens,
                    pad_token_id=processor.tokenizer.pad_token_id,
                )  # fmt: skip
            new = out[0, inputs["input_ids"].shape[1] :]
            baseline.append(processor.decode(new, skip_special_tokens=True))
        sync()
        t_loop, c_loop = time.perf_counter() - start, time.process_time() - cpu_start

        records = [{"image": p} for p in paths]
        stage_runs = {}
        for batch_size in (args.batch_size, 1) if args.stage_batch_1 else (args.batch_size,):
            settings = CaptionSettings(
                prompts=(prompt,),
                max_new_tokens=args.new_tokens,
                temperature=0.7,
                top_p=0.95,
                seed=0,
                batch_size=batch_size,
            )
            start, cpu_start = time.perf_counter(), time.process_time()
            batched = list(caption_records(records, lvlm, settings, StageContext("caption")))
            sync()
            stage_runs[batch_size] = (time.perf_counter() - start, time.process_time() - cpu_start)
        t_stage, c_stage = stage_runs[args.batch_size]

    n = args.images
    assert len(batched) == len(baseline) == n
    image_tokens = (args.image_size // 8) ** 2
    print(
        f"device {lvlm.device}, dtype {args.dtype}, torch threads {torch.get_num_threads()}; LLaVA hidden "
        f"{args.hidden} x {args.layers} layers, {image_tokens} image tokens, {args.new_tokens} new tokens"
    )
    rows = [("per-image generate loop", t_loop, c_loop)]
    rows += [(f"caption, batch size {b}", wall, cpu) for b, (wall, cpu) in stage_runs.items()]
    for label, wall, cpu in rows:
        rate = n / wall
        print(f"{label:<26}: {n} captions in {wall:6.2f} s wall = {rate:6.2f} captions/s ({cpu:6.2f} s CPU)")
    print(f"speed-up: {t_loop / t_stage:.1f}x wall-clock, {c_loop / c_stage:.1f}x in CPU time")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
