"""Training throughput and peak memory: `clipdpo train` against a plain TRL DPOTrainer script, and with
precomputed reference log-probabilities, on the same small LLaVA (real classes, random weights) and pairs.

    PYTHONPATH=src python benchmarks/bench_train.py [--pairs 48] [--steps 8] [--repeats 2] [--hidden 256]

Every run is its own process (peak RSS from os.wait4 of that process). Throughput is the trainer's own
train_samples_per_second (the training loop only), best of --repeats; wall time includes start-up and loading.
Prints the ratios against the plain-TRL baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A plain TRL script, as the TRL docs write one for a vision model: a datasets.Image column decoded lazily,
# conversational prompt/chosen/rejected, DPOTrainer with the reference model it loads itself.
PLAIN_TRL = r"""
import json, sys
import torch
from datasets import Dataset, Features, Image, Value, List
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import DPOConfig, DPOTrainer

pairs_path, model_dir, out_dir, steps, per_device = sys.argv[1:6]
rows = [json.loads(line) for line in open(pairs_path)]
msg = lambda role, text: [{"role": role, "content": text}]
data = {"image": [r["image"] for r in rows], "prompt": [msg("user", r["prompt"]) for r in rows],
        "chosen": [msg("assistant", r["chosen"]) for r in rows],
        "rejected": [msg("assistant", r["rejected"]) for r in rows]}
turn = List({"role": Value("string"), "content": Value("string")})
features = Features({"image": Image(), "prompt": turn, "chosen": turn, "rejected": turn})
dataset = Dataset.from_dict(data, features=features)
model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
processor = AutoProcessor.from_pretrained(model_dir)
args = DPOConfig(output_dir=out_dir, max_steps=int(steps), per_device_train_batch_size=int(per_device),
                 gradient_accumulation_steps=1, learning_rate=1e-5, lr_scheduler_type="cosine",
                 warmup_steps=0.01,
                 weight_decay=0.0, beta=0.1, max_length=None, bf16=False, gradient_checkpointing=False,
                 report_to="none", save_strategy="no", logging_steps=1, use_cpu=not torch.cuda.is_available(),
                 dataloader_num_workers=0, optim="adamw_torch", disable_tqdm=True)
trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor)
result = trainer.train()
trainer.save_model(out_dir)
print("RESULT " + json.dumps(result.metrics), flush=True)
"""


def write_pairs(folder: str, n: int) -> str:
    from PIL import Image

    words = ["dog", "cat", "ball", "table", "chair", "tree", "car", "house", "person", "bird", "cup",
             "plate", "window", "door", "lamp"]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "pairs.jsonl")
    with open(path, "w") as fh:
        for i in range(n):
            image = os.path.join(folder, f"img{i}.png")
            Image.new("RGB", (96 + i % 7, 80), color=(37 * i % 255, 90, 160)).save(image)
            chosen = " ".join(words[(i + k) % len(words)] for k in range(24))
            rejected = " ".join(words[(3 * i + k) % len(words)] for k in range(22))
            record = {"id": f"p{i}", "image": image, "prompt": "Describe the image in detail.",
                      "chosen": f"a photo of {chosen}", "rejected": f"a photo of {rejected}"}
            fh.write(json.dumps(record) + "\n")
    return path


def run(cmd: list[str], env: dict[str, str]) -> tuple[str, str, float, float]:
    """stdout, stderr, wall seconds and peak RSS (MiB) of one process tree."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{stderr[-3000:]}")
    return stdout, stderr, wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=48)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--per-device", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()

    from clipdpo_mini.models.tiny_llava import build_tiny_llava

    work = tempfile.mkdtemp(prefix="bench-train-")
    sizes = dict(hidden_size=args.hidden, num_layers=args.layers, num_heads=4, vision_hidden_size=128,
                 vision_layers=2, image_size=64, patch_size=8)
    model = build_tiny_llava(os.path.join(work, "model"), **sizes)
    pairs = write_pairs(os.path.join(work, "data"), args.pairs)
    path = os.path.join(ROOT, "src") + os.pathsep + os.environ.get("PYTHONPATH", "")
    env = {**os.environ, "PYTHONPATH": path, "TOKENIZERS_PARALLELISM": "false"}
    py = sys.executable
    common = ["--max-steps", str(args.steps), "--per-device-batch-size", str(args.per_device),
              "--batch-size", str(args.per_device), "--learning-rate", "1e-5", "--precision", "fp32",
              "--no-gradient-checkpointing", "--num-workers", "0", "--save-steps", "100000", "-q"]
    script = os.path.join(work, "plain_trl.py")
    with open(script, "w") as fh:
        fh.write(PLAIN_TRL)

    ref_pairs = os.path.join(work, "pairs.ref.jsonl")
    _, _, ref_wall, ref_rss = run([py, "-m", "clipdpo_cli", "ref-logps", pairs, "-m", model,
                                   "-o", ref_pairs, "--precision", "fp32", "-q"], env)

    def plain(i: int):
        out, _, wall, rss = run([py, script, pairs, model, os.path.join(work, f"plain{i}"), str(args.steps),
                                 str(args.per_device)], env)
        metrics = json.loads(out.split("RESULT ", 1)[1])
        return metrics["train_samples_per_second"], wall, rss

    def clipdpo(i: int, data: str, ref: str):
        out, _, wall, rss = run([py, "-m", "clipdpo_cli", "train", data, "--model", model, "--output-dir",
                                 os.path.join(work, f"c{ref}{i}"), "--ref-logps", ref, *common], env)
        summary = json.loads(out)
        assert summary["reference"] == ref, summary
        return summary["train_samples_per_second"], wall, rss

    names = ("plain TRL", "clipdpo", "clipdpo precomputed")
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in names}
    for i in range(args.repeats):  # interleaved, so that load changes hit all three alike
        results["plain TRL"].append(plain(i))
        results["clipdpo"].append(clipdpo(i, pairs, "live"))
        results["clipdpo precomputed"].append(clipdpo(i, ref_pairs, "precomputed"))

    best = {name: (max(r[0] for r in runs), min(r[1] for r in runs), max(r[2] for r in runs))
            for name, runs in results.items()}
    base_sps, base_wall, base_rss = best["plain TRL"]
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(f"model: tiny LLaVA hidden {args.hidden} x {args.layers} layers, {args.pairs} pairs, "
          f"{args.steps} steps x {args.per_device} pairs; threads {threads}; best of {args.repeats}")
    print(f"{'run':<22}{'samples/s':>10}{'ratio':>8}{'wall s':>9}{'peak RSS MiB':>14}{'RSS ratio':>11}")
    for name, (sps, wall, rss) in best.items():
        print(f"{name:<22}{sps:>10.2f}{sps / base_sps:>8.2f}{wall:>9.1f}{rss:>14.0f}{rss / base_rss:>11.2f}")
    for name, runs in results.items():
        print(f"  {name} runs: " + ", ".join(f"{r[0]:.2f}/s {r[1]:.0f}s {r[2]:.0f}MiB" for r in runs))
    print(f"reference pass (ref-logps, once per starting model): {ref_wall:.1f} s wall, "
          f"peak RSS {ref_rss:.0f} MiB")


if __name__ == "__main__":
    main()
