"""GPU figures in one lease: caption, score and DPO training at the real sizes, with random weights.

    PYTHONPATH=src python benchmarks/gpu.py --out gpu.json            # one H100/H200: about 5-7 minutes
    PYTHONPATH=src python benchmarks/gpu.py --tiny --out tiny.json    # CPU: what the suite runs
    bash tools/device_kit.sh                                          # the wheels the lent GPU image lacks

Speed does not depend on weight values, so every model is a real-size architecture built from its config
with random weights (no network): LLaVA-1.5-7B (CLIP ViT-L/14-336 + a Llama-2-7B-sized LM, bf16, sdpa) and
the DFN ViT-H/14 (224 px) open_clip tower. The processor (real LLaVA-1.5 classes, template and tokenizer
type) is the project's llava15 family fixture. Each section runs in a process of its own under its own
timeout (SECTIONS, all cut to what --budget leaves), and the JSON is rewritten after every section, so a
section that fails or runs out of time is recorded (its status, error and last log lines) and the next one
runs, and a run cut off keeps every section it finished:

- caption: captions/s of the `caption` stage (batched, left-padded, per-row seeded sampling) at batch
  16 / 32 / 64 and caption's --batch-size auto for this GPU, against a per-image `generate` loop; model FLOP
  utilisation against the GPU's bf16 peak.
- score: images/s of the `score` image path (DataLoader workers decoding the JPEGs it writes first, each
  image encoded once, in batches) against a per-image open + preprocess + encode loop; texts/s of the text
  tower on token ids (the tokenizer is left out); mean GPU utilisation while scoring (pynvml, when
  installed).
- train_lora: `clipdpo train --lora --save-adapter-only` (the CLI, one process) on LLaVA-1.5-7B: steps/s,
  pairs/s and peak GPU memory (only the adapter is saved).
- train_full: full fine-tuning of a smaller real-size LLaVA (a TinyLlama-1.1B-sized LM: a 7B full run with a
  live reference copy does not fit one GPU) with precomputed reference log-probs against a live reference.

--tiny shrinks every size (and runs on CPU) so tests/e2e/test_gpu_benchmark.py runs the same code in the
suite; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by device-name fragment, for model FLOP utilisation.
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}


@dataclass
class Sizes:
    """Every size a run uses; `real()` is the lease run, `tiny()` the CPU test."""

    llm: dict[str, int]
    vision: dict[str, int]
    train_llm: dict[str, int]
    clip_archs: tuple[str, ...]
    caption_images: int
    loop_images: int
    batch_sizes: tuple[int, ...]
    new_tokens: int
    score_images: int
    score_batch: int
    text_batch: int
    train_pairs: int
    train_steps: int
    per_device: int
    dtype: str

    @staticmethod
    def real() -> Sizes:
        return Sizes(
            llm=dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                     num_key_value_heads=32, vocab_size=32064),
            vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                        num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768),
            train_llm=dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                           num_attention_heads=32, num_key_value_heads=4, vocab_size=32064),
            clip_archs=("ViT-H-14-quickgelu",),
            caption_images=128, loop_images=16, batch_sizes=(16, 32, 64), new_tokens=64,
            score_images=1024, score_batch=256, text_batch=1024,
            train_pairs=96, train_steps=8, per_device=8, dtype="bf16",
        )  # fmt: skip

    @staticmethod
    def tiny() -> Sizes:
        return Sizes(
            llm=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=4, vocab_size=1000),
            vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                        image_size=336, patch_size=14, projection_dim=32),
            train_llm=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, vocab_size=1000),
            clip_archs=("tiny",),
            caption_images=4, loop_images=2, batch_sizes=(2, 4), new_tokens=4,
            score_images=8, score_batch=4, text_batch=8,
            train_pairs=6, train_steps=3, per_device=2, dtype="fp32",
        )  # fmt: skip


def log(message: str) -> None:
    print(f"gpu bench: {message}", file=sys.stderr, flush=True)


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_tflops(device: Any, override: float | None) -> float | None:
    if override:
        return override
    import torch

    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def write_images(folder: str, n: int, size: tuple[int, int] = (640, 480)) -> list[str]:
    """n photo-like JPEGs (smooth gradients plus noise, so they decode like photos)."""
    import numpy as np
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    w, h = size
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    paths = []
    for i in range(n):
        base = (ramp * (i % 7 + 1) / 7 + rng.normal(0, 12, (h, w, 3))) % 256
        path = os.path.join(folder, f"{i:05d}.jpg")
        Image.fromarray(base.astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


# ---- models ----------------------------------------------------------------------------------------------


def llava_processor(tmp: str) -> Any:
    from clipdpo_cli.models.lvlm import load_lvlm_processor
    from clipdpo_mini.models.families import build_family

    return load_lvlm_processor(build_family("llava15", os.path.join(tmp, "llava15-processor")))


def llava_model(processor: Any, llm: dict[str, int], vision: dict[str, int], device: Any, dtype: Any) -> Any:
    """A LlavaForConditionalGeneration of the given sizes, random weights, built on the device."""
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    tok = processor.tokenizer
    text = LlamaConfig(**llm, max_position_embeddings=4096, rms_norm_eps=1e-5, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**vision), text_config=text, vocab_size=llm["vocab_size"],
        image_token_index=processor.image_token_id, vision_feature_layer=-2,
        vision_feature_select_strategy="default", image_seq_length=(vision["image_size"] // 14) ** 2,
    )  # fmt: skip
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = LlavaForConditionalGeneration(config).to(dtype)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model.eval()


def parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


# ---- caption ---------------------------------------------------------------------------------------------


def bench_caption(s: Sizes, device: Any, tmp: str, peak: float | None) -> dict[str, Any]:
    import torch
    from PIL import Image

    from clipdpo_cli.io.stage import StageContext
    from clipdpo_cli.models.hub import model_dtype
    from clipdpo_cli.models.lvlm import Lvlm
    from clipdpo_cli.stages.caption import CaptionSettings, caption_records

    processor = llava_processor(tmp)
    processor.tokenizer.padding_side = "left"
    model = llava_model(processor, s.llm, s.vision, device, model_dtype(s.dtype, device))
    lvlm = Lvlm(model=model, processor=processor, name="llava-1.5-7b-random")
    paths = write_images(os.path.join(tmp, "caption-imgs"), s.caption_images)
    prompt = "Describe this image in one or two sentences."
    prompt_tokens = int(lvlm.inputs([Image.open(paths[0]).convert("RGB")], [prompt])["input_ids"].shape[1])
    lvlm.generate([Image.open(paths[0]).convert("RGB")], [prompt], max_new_tokens=4, seed=[0])  # warm-up

    sync(device)
    start = time.perf_counter()
    for path in paths[: s.loop_images]:
        image = Image.open(path).convert("RGB")
        content = [{"type": "image", "image": image}, {"type": "text", "text": prompt}]
        inputs = processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=True,
            return_dict=True, return_tensors="pt",
        ).to(device, dtype=model.dtype)  # fmt: skip
        with torch.inference_mode():
            model.generate(**inputs, do_sample=True, temperature=1.0, max_new_tokens=s.new_tokens)
    sync(device)
    loop_rate = s.loop_images / (time.perf_counter() - start)
    out: dict[str, Any] = {
        "model": "LLaVA-1.5-7B architecture" if s.llm["hidden_size"] == 4096 else "tiny LLaVA",
        "parameters": parameters(model), "prompt_tokens": prompt_tokens, "new_tokens": s.new_tokens,
        "loop_captions_per_s": loop_rate, "stage": {},
    }  # fmt: skip
    flops_per_caption = 2 * parameters(model) * (prompt_tokens + s.new_tokens)
    batches = list(s.batch_sizes)
    if device.type == "cuda":  # caption's --batch-size auto on this GPU, with this model loaded
        from clipdpo_cli.models.device import generation_batch_size

        out["auto_batch"] = generation_batch_size(model, device, s.new_tokens)
        batches = sorted({*batches, out["auto_batch"]})
    for batch in batches:
        settings = CaptionSettings(
            prompts=(prompt,), max_new_tokens=s.new_tokens, temperature=1.0, top_p=1.0, seed=0,
            batch_size=batch, workers=4,
        )  # fmt: skip
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sync(device)
        start = time.perf_counter()
        rows = list(caption_records(({"image": p} for p in paths), lvlm, settings, StageContext("caption")))
        sync(device)
        rate = len(rows) / (time.perf_counter() - start)
        entry = {"captions_per_s": rate, "x_loop": rate / loop_rate}
        if peak:
            entry["mfu"] = rate * flops_per_caption / (peak * 1e12)
        if device.type == "cuda":
            entry["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        out["stage"][str(batch)] = entry
        log(f"caption batch {batch}: {rate:.2f} captions/s = {rate / loop_rate:.1f}x the per-image loop "
            f"({loop_rate:.2f}/s)" + (f", MFU {entry['mfu']:.1%}" if peak else ""))  # fmt: skip
    del lvlm, model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


# ---- score -----------------------------------------------------------------------------------------------


class Utilisation:
    """Mean GPU utilisation (pynvml) sampled every 0.1 s while the block runs; None without pynvml/CUDA."""

    def __init__(self, device: Any) -> None:
        self.samples: list[int] = []
        self.handle = None
        if device.type == "cuda":
            try:
                import pynvml

                pynvml.nvmlInit()
                self.handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
                self.nvml = pynvml
            except Exception:  # noqa: BLE001 - an optional figure
                self.handle = None
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.samples.append(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)

    def __enter__(self) -> Utilisation:
        if self.handle is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def clip_model(arch: str, device: Any, precision: str) -> Any:
    """A real-size open_clip architecture with random weights, as a ClipModel (no tokenizer)."""
    import open_clip
    import torch

    from clipdpo_cli.models.clip import ClipModel

    torch.manual_seed(0)
    if arch == "tiny":
        from clipdpo_mini.models.tiny_clip import TINY_CONFIG

        model = open_clip.CLIP(**TINY_CONFIG).to(device)
        preprocess = open_clip.image_transform(TINY_CONFIG["vision_cfg"]["image_size"], is_train=False)
    else:
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None, device=device)
    return ClipModel(model.eval(), preprocess, None, arch, device, precision)


def bench_score(s: Sizes, device: Any, tmp: str) -> dict[str, Any]:
    import torch
    from PIL import Image

    from clipdpo_cli.models.clip_images import encode_image_chunks

    paths = write_images(os.path.join(tmp, "score-imgs"), s.score_images)
    precision = "bf16" if s.dtype == "bf16" else "fp32"
    out: dict[str, Any] = {}
    for arch in s.clip_archs:
        clip = clip_model(arch, device, precision)
        clip.encode_images([Image.open(paths[0]).convert("RGB")])  # warm-up
        n_loop = min(len(paths), max(8, s.score_batch // 4))
        sync(device)
        start = time.perf_counter()
        for path in paths[:n_loop]:
            clip.encode_images([Image.open(path).convert("RGB")])
        loop_rate = n_loop / (time.perf_counter() - start)
        workers = min(16, os.cpu_count() or 1)
        with Utilisation(device) as util:
            start = time.perf_counter()
            chunks = encode_image_chunks(
                ({"image": p} for p in paths), clip, batch_size=s.score_batch, workers=workers
            )
            n = sum(len(c.rows) for c in chunks)
            sync(device)
            rate = n / (time.perf_counter() - start)
        context = int(getattr(clip.model, "context_length", 77))
        tokens = torch.randint(1, 1000, (s.text_batch, context))  # ids every tower's vocabulary has
        clip.encode_tokens(tokens[:2], shorten=False)
        sync(device)
        start = time.perf_counter()
        clip.encode_tokens(tokens, shorten=False)
        sync(device)
        text_rate = s.text_batch / (time.perf_counter() - start)
        out[arch] = {
            "images_per_s": rate, "loop_images_per_s": loop_rate, "x_loop": rate / loop_rate,
            "decode_workers": workers, "gpu_utilisation_pct": util.mean, "texts_per_s": text_rate,
            "text_context": context, "batch": s.score_batch,
        }  # fmt: skip
        util_note = f", GPU busy {util.mean:.0f}%" if util.mean is not None else ""
        log(f"score {arch}: {rate:.0f} images/s = {rate / loop_rate:.1f}x the per-image loop{util_note}; "
            f"{text_rate:.0f} texts/s at {context} tokens")  # fmt: skip
        del clip
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


# ---- train -----------------------------------------------------------------------------------------------


def save_llava(processor: Any, llm: dict[str, int], vision: dict[str, int], folder: str, device: Any) -> str:
    import torch

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = llava_model(processor, llm, vision, device, dtype)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return folder


def write_pairs(tmp: str, n: int) -> str:
    paths = write_images(os.path.join(tmp, "train-imgs"), max(1, n // 4))
    path = os.path.join(tmp, "pairs.jsonl")
    words = "a red ball on a wooden table next to a blue cup near the window in a small room".split()
    with open(path, "w") as fh:
        for i in range(n):
            chosen = " ".join(words[: 8 + i % 8])
            rejected = " ".join(words[: 6 + i % 5] + ["with", "a", "green", "dog"])
            row = {"id": f"p{i}", "image": paths[i % len(paths)], "prompt": "Describe the image.",
                   "chosen": chosen, "rejected": rejected}  # fmt: skip
            fh.write(json.dumps(row) + "\n")
    return path


def run_train(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "clipdpo_cli", *args]
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"clipdpo {' '.join(args[:2])} failed: {proc.stderr.strip().splitlines()[-1:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else {}


def train_setup(s: Sizes, tmp: str) -> tuple[dict[str, str], Any, str, list[str]]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.path.join(ROOT, "src"),
                                                                    os.environ.get("PYTHONPATH")])),
               HF_HUB_OFFLINE="1")  # fmt: skip
    processor = llava_processor(tmp)
    pairs = write_pairs(tmp, s.train_pairs)
    quick = ["--max-steps", str(s.train_steps), "--per-device-batch-size", str(s.per_device), "--batch-size",
             str(s.per_device), "--learning-rate", "1e-5", "--warmup-ratio", "0", "--logging-steps", "1",
             "--save-steps", "100000", "--num-workers", "4"]  # fmt: skip
    return env, processor, pairs, quick


def train_entry(s: Sizes, name: str, summary: dict[str, Any]) -> dict[str, Any]:
    step = summary.get("median_step_seconds") or float("nan")
    entry = {
        "steps": summary.get("steps"), "train_runtime_s": summary.get("train_runtime"),
        "median_step_s": step, "steps_per_s": 1 / step,
        "pairs_per_s": s.per_device / step,  # the effective batch is one device batch
        "peak_gpu_memory_gb": summary.get("peak_gpu_memory_gb"),
    }  # fmt: skip
    log(f"train {name}: {entry['steps_per_s']:.3f} steps/s, peak GPU memory "
        f"{entry['peak_gpu_memory_gb'] or 0:.1f} GB")  # fmt: skip
    return entry


def bench_train_lora(s: Sizes, device: Any, tmp: str) -> dict[str, Any]:
    """LLaVA-1.5-7B with --lora; only the adapter is saved (--save-adapter-only: no 14-28 GB merged model)."""
    env, processor, pairs, quick = train_setup(s, tmp)
    big = save_llava(processor, s.llm, s.vision, os.path.join(tmp, "llava-7b"), device)
    summary = run_train(["train", pairs, "--model", big, "--output-dir", os.path.join(tmp, "o-lora"),
                         "--lora", "--save-adapter-only", *quick], env)  # fmt: skip
    return {"lora_7b": train_entry(s, "lora_7b", summary)}


def bench_train_full(s: Sizes, device: Any, tmp: str) -> dict[str, Any]:
    """Full fine-tuning of a TinyLlama-1.1B-sized LLaVA: precomputed reference log-probs vs a live copy."""
    env, processor, pairs, quick = train_setup(s, tmp)
    small = save_llava(processor, s.train_llm, s.vision, os.path.join(tmp, "llava-1b"), device)
    out: dict[str, Any] = {}
    live = out["full_1b_live_reference"] = train_entry(s, "full_1b_live_reference", run_train(
        ["train", pairs, "--model", small, "--output-dir", os.path.join(tmp, "o-live"), "--ref-logps", "live",
         *quick], env))  # fmt: skip
    with_ref = os.path.join(tmp, "pairs.ref.jsonl")
    run_train(["ref-logps", pairs, "-m", small, "-o", with_ref, "-q"], env)
    pre = out["full_1b_precomputed_reference"] = train_entry(s, "full_1b_precomputed_reference", run_train(
        ["train", with_ref, "--model", small, "--output-dir", os.path.join(tmp, "o-pre"), "--ref-logps",
         "precomputed", *quick], env))  # fmt: skip
    out["precomputed_x_live_steps"] = pre["steps_per_s"] / live["steps_per_s"]
    log(f"train: precomputed reference = {out['precomputed_x_live_steps']:.2f}x the live-reference step rate")
    return out


# ---- sections: each in its own process, with its own timeout; the JSON rewritten after each -------------

SECTIONS = {"caption": 120, "score": 90, "train_lora": 150, "train_full": 120}  # seconds each, at most


def run_section(name: str, args: argparse.Namespace) -> None:
    """The child process of one section: its figures as JSON into args.part."""
    import torch

    sizes = Sizes.tiny() if args.tiny else Sizes.real()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    if device.type == "cuda":
        from clipdpo_cli.models.device import enable_tf32

        enable_tf32()  # as every model pass on a GPU does (models.device.resolve_device)
    with tempfile.TemporaryDirectory(prefix=f"gpu-bench-{name}-") as tmp:
        if name == "caption":
            figures = bench_caption(sizes, device, tmp, peak_tflops(device, args.peak_tflops))
        elif name == "score":
            figures = bench_score(sizes, device, tmp)
        elif name == "train_lora":
            figures = bench_train_lora(sizes, device, tmp)
        else:
            figures = bench_train_full(sizes, device, tmp)
    with open(args.part, "w") as fh:
        json.dump(figures, fh)


def write_json(path: str, result: dict[str, Any]) -> None:
    """Replace `path` whole (a reader never sees half a file; a killed run keeps the last sections)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(result, fh, indent=1)
    os.replace(tmp, path)


def spawn_section(name: str, args: argparse.Namespace, timeout: float, part: str) -> dict[str, Any]:
    """Run one section in a child process (its own session, killed whole on timeout); its status."""
    import collections
    import signal

    command = [sys.executable, os.path.abspath(__file__), "--run-section", name, "--part", part]
    command += ["--tiny"] if args.tiny else []
    command += ["--peak-tflops", str(args.peak_tflops)] if args.peak_tflops else []
    tail: collections.deque[str] = collections.deque(maxlen=20)
    start = time.perf_counter()
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def echo() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.write(line)
            tail.append(line.rstrip())

    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join(5)
        return {"status": "timeout", "seconds": time.perf_counter() - start,
                "error": f"stopped after its {timeout:.0f} s", "log_tail": list(tail)[-5:]}  # fmt: skip
    reader.join(5)
    seconds = time.perf_counter() - start
    if code != 0 or not os.path.exists(part):
        lines = [line for line in tail if line.strip()]
        return {"status": "failed", "seconds": seconds, "exit_code": code,
                "error": lines[-1] if lines else f"exit {code}", "log_tail": lines[-5:]}  # fmt: skip
    return {"status": "ok", "seconds": seconds}


def environment(tiny: bool) -> dict[str, Any]:
    import importlib.metadata

    import torch

    cuda = torch.cuda.is_available() and not tiny
    info: dict[str, Any] = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "tiny": tiny}
    for package in ("torch", "transformers", "accelerate", "trl", "peft", "open_clip_torch"):
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = None
    info["python"] = sys.version.split()[0]
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes on CPU (the suite's check)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated, run in this order")
    parser.add_argument("--out", default="gpu-bench.json", help="the JSON, rewritten after every section")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for all sections (default 420; --tiny 1800): a section's timeout is "
                        "cut to what is left")
    parser.add_argument("--timeouts", default="", help="NAME=SECONDS,... overriding a section's own timeout")
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak (default: by GPU name)")
    parser.add_argument("--run-section", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_section:
        run_section(args.run_section, args)
        return

    import torch

    if not torch.cuda.is_available() and not args.tiny:
        raise SystemExit("no GPU visible: run with --tiny for the CPU check")
    # a loaded 2-core CPU runs the tiny sections slower than a GPU runs the real ones
    timeouts = {name: seconds * (4 if args.tiny else 1) for name, seconds in SECTIONS.items()}
    if args.budget is None:
        args.budget = 1800.0 if args.tiny else 420.0
    for item in filter(None, args.timeouts.split(",")):
        name, _, value = item.partition("=")
        timeouts[name] = float(value)
    result: dict[str, Any] = {**environment(args.tiny), "budget_s": args.budget, "sections": {}}
    started = time.perf_counter()
    write_json(args.out, result)
    with tempfile.TemporaryDirectory(prefix="gpu-bench-parts-") as parts:
        for name in filter(None, args.sections.split(",")):
            left = args.budget - (time.perf_counter() - started)
            if name not in SECTIONS:
                status = {"status": "failed", "seconds": 0.0,
                          "error": f"unknown section '{name}' ({', '.join(SECTIONS)})"}  # fmt: skip
            elif left <= 1:
                spent = f"the --budget of {args.budget:.0f} s is spent"
                status = {"status": "skipped", "seconds": 0.0, "error": spent}
            else:
                log(f"section {name}: at most {min(timeouts.get(name, left), left):.0f} s")
                part = os.path.join(parts, f"{name}.json")
                status = spawn_section(name, args, min(timeouts.get(name, left), left), part)
                if status["status"] == "ok":
                    with open(part) as fh:
                        result[name] = json.load(fh)
            result["sections"][name] = status
            result["seconds"] = time.perf_counter() - started
            write_json(args.out, result)
            if status["status"] != "ok":
                log(f"section {name} {status['status']}: {status.get('error')}")
    ok = [n for n, st in result["sections"].items() if st["status"] == "ok"]
    log(f"done in {result['seconds']:.0f} s ({len(ok)} of {len(result['sections'])} sections ok); "
        f"figures in {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
