"""Real size on CPU: the published MobileVLM_V2-1.7B config, random weights in bf16, through the commands.

    PYTHONPATH=src python benchmarks/real_size.py [--size 1.7B|3B] [--workdir DIR] [--out FILE]

Builds the checkpoint in the published layout (config.json of mtgv/MobileVLM_V2-1.7B as kept in
src/clipdpo_mini/models/families/mobilevlm_v2/facts.json, which names its source; the real CLIP ViT-L/14-336
tower; a pytorch_model.bin of bf16 random weights under the official names; the fixture's tokenizer of the
real type), then runs each pass as its own `clipdpo` process and reads that process's peak RSS (os.wait4):

  - caption:   `clipdpo caption` of one image, `--dtype bf16`, 8 new tokens;
  - ref-logps: `clipdpo ref-logps` of two pairs, `--precision bf16`;
  - lora:      one `clipdpo train --lora --precision bf16` step on those two pairs (one pair per step,
               precomputed reference log-probs of the base model, gradient checkpointing, adapter saved).

Each pass's peak RSS is set against the bytes of its weights (target for the inference passes: <= 1.3x),
beside the RSS of a process that only imports torch, transformers, peft and trl (the libraries' own share).
The 7B figures are computed on the meta device (parameter counts, no weights): MobileVLM_V2-7B and
LLaVA-1.5-7B, the weight bytes of each pass now and before (fp32 loads), scaled by the ratios measured here.
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
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, ROOT)

from benchmarks.common import measure  # noqa: E402

# Overrides of the published 1.7B config.json for the larger checkpoints: the values facts.json's sources
# give (mtgv/MobileVLM_V2-3B config.json: 2560 / 6912 / 32 layers / 32 heads, rms 1e-6; -7B: 4096 / 11008 /
# 32 / 32, 4096 positions, rms 1e-5; the mm_* keys and ldpnetv2 as 1.7B's).
SIZES = {
    "1.7B": {},
    "3B": {"hidden_size": 2560, "intermediate_size": 6912, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 32, "rms_norm_eps": 1e-6},
    "7B": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 4096,
           "rms_norm_eps": 1e-5},
}  # fmt: skip
INFERENCE_TARGET = 1.3


def published_config(size: str) -> dict:
    from clipdpo_mini.models.families import facts

    config = dict(facts("mobilevlm_v2")["config"])
    config.update(SIZES[size])
    config["_name_or_path"] = f"mtgv/MobileVLM_V2-{size}"
    return config


def build(size: str, folder: str) -> None:
    """Write the checkpoint: the published config, random bf16 weights under the official names (in a child
    process, so the parent stays small)."""
    import torch

    from clipdpo_cli.models.mobilevlm import register
    from clipdpo_cli.models.mobilevlm.configuration import MobileVLMConfig
    from clipdpo_cli.models.mobilevlm.modeling import MobileVLMForConditionalGeneration
    from clipdpo_mini.models.families import facts
    from clipdpo_mini.models.families.mobilevlm import official_state_dict

    register()
    os.makedirs(folder, exist_ok=True)
    config = published_config(size)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    model = MobileVLMForConditionalGeneration(MobileVLMConfig(**config)).eval()
    torch.save(official_state_dict(model, copy=False), os.path.join(folder, "pytorch_model.bin"))
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as fh:
        json.dump(config, fh, indent=2, sort_keys=True)
    with open(os.path.join(folder, "generation_config.json"), "w", encoding="utf-8") as fh:
        json.dump(facts("mobilevlm_v2")["generation_config"], fh, indent=2)
    write_tokenizer(folder, config["vocab_size"])


def write_tokenizer(folder: str, vocab_size: int) -> None:
    """The fixture's Llama-2 SentencePiece tokenizer (the real type and specials), its vocabulary padded with
    unreachable pieces to the real 32,000 (the processor puts <image> right after the vocabulary)."""
    from transformers import LlamaTokenizer

    from clipdpo_mini.models.families import sentencepiece_vocab

    vocab, merges = sentencepiece_vocab(["<unk>", "<s>", "</s>"], 400, prefix=True)
    for i in range(vocab_size - len(vocab)):
        vocab[f"<unused{i}>"] = len(vocab)
    tok = LlamaTokenizer(vocab=vocab, merges=merges, legacy=False, add_bos_token=True, pad_token="<unk>")
    assert len(tok) == vocab_size, len(tok)
    tok.save_pretrained(folder)


def parameter_counts(model_config: object) -> dict[str, int]:
    """Parameters of a model built on the meta device, in all and per part (vision tower / projector / LM)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from clipdpo_cli.models.mobilevlm import register
    from clipdpo_cli.train.parts import vision_parts

    register()
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(model_config)
    parts = vision_parts(model)

    def count(prefixes: tuple[str, ...]) -> int:
        return sum(
            p.numel() for n, p in model.named_parameters() if any(n.startswith(x + ".") for x in prefixes)
        )

    total = sum(p.numel() for p in model.parameters())
    return {"total": total, "vision_tower": count(parts.tower), "projector": count(parts.projector)}


def seven_b() -> dict[str, dict]:
    """Parameter counts and per-pass weight bytes at 7B, before (fp32 loads) and now, from the meta device."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    from clipdpo_cli.models.mobilevlm.configuration import MobileVLMConfig

    clip_l336 = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                 num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768)
    vicuna7b = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                           num_attention_heads=32, num_key_value_heads=32, vocab_size=32064)
    configs = {  # llava-hf/llava-1.5-7b-hf: Vicuna-7B (vocab 32064 with the image and pad tokens), CLIP-L/336
        "MobileVLM_V2-7B": MobileVLMConfig(**published_config("7B")),
        "LLaVA-1.5-7B": LlavaConfig(vision_config=clip_l336, text_config=vicuna7b, vision_feature_layer=-2),
    }  # fmt: skip
    out = {}
    for name, config in configs.items():
        n = parameter_counts(config)
        trained = n["total"] - n["vision_tower"]
        gb = 1e9
        out[name] = {
            "parameters": n,
            # weights that no optimizer updates (inference, ref-logps, the live reference, the LoRA base)
            "frozen_weights_gb": {"before": round(4 * n["total"] / gb, 2),
                                  "now": round(2 * n["total"] / gb, 2)},  # fmt: skip
            # full fine-tune without DeepSpeed, one process: fp32 policy + gradients + AdamW's two moments of
            # what trains, plus the live reference (before: everything trained, an fp32 reference)
            "full_ft_gb": {
                "before": round((16 * n["total"] + 4 * n["total"]) / gb, 1),
                "now": round((4 * n["total"] + 12 * trained + 2 * n["total"]) / gb, 1),
            },
        }
    return out


def write_inputs(folder: str) -> tuple[str, str]:
    """One image folder (one 640x480 image) and two pairs on it and a second image."""
    from PIL import Image

    images = os.path.join(folder, "images")
    os.makedirs(images, exist_ok=True)
    Image.new("RGB", (640, 480), (200, 40, 40)).save(os.path.join(images, "red.png"))
    Image.new("RGB", (480, 640), (40, 40, 200)).save(os.path.join(folder, "blue.png"))
    pairs = os.path.join(folder, "pairs.jsonl")
    with open(pairs, "w") as fh:
        for i, (image, color) in enumerate(((os.path.join(images, "red.png"), "red"),
                                            (os.path.join(folder, "blue.png"), "blue"))):  # fmt: skip
            fh.write(json.dumps({"id": f"p{i}", "image": image, "prompt": "Describe the image.",
                                 "chosen": f"A plain {color} square filling the whole picture.",
                                 "rejected": "A green dog running on a lawn beside a tree."})
                     + "\n")  # fmt: skip
    with open(os.path.join(folder, "prompt.txt"), "w") as fh:
        fh.write("Describe the image.\n")
    return images, pairs


def weight_bytes(folder: str) -> int:
    """Bytes of the checkpoint's weights in bf16 (parameter count from the meta device x 2)."""
    from transformers import AutoConfig

    from clipdpo_cli.models.mobilevlm import register

    register()
    return 2 * parameter_counts(AutoConfig.from_pretrained(folder))["total"]


def clipdpo(*args: str) -> list[str]:
    return [sys.executable, "-m", "clipdpo_cli", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("1.7B", "3B"), default="1.7B")
    parser.add_argument("--workdir", default=None, help="Where the checkpoint goes (default: temp).")
    parser.add_argument("--out", default=None, help="Write the figures as JSON to this file.")
    parser.add_argument("--passes", default="caption,ref-logps,lora")
    parser.add_argument("--before", default=None, metavar="SRC",
                        help="Also run caption and ref-logps with this source tree (e.g. an older checkout's "
                        "src/) and report its peak RSS beside the one of this tree.")  # fmt: skip
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src"), "TOKENIZERS_PARALLELISM": "false"}
    work = args.workdir or tempfile.mkdtemp(prefix="real-size-")
    model = os.path.join(work, f"MobileVLM_V2-{args.size}")
    figures: dict = {"size": args.size, "model": model, "passes": {}}
    if not os.path.isfile(os.path.join(model, "pytorch_model.bin")):
        start = time.perf_counter()
        code = f"from benchmarks.real_size import build; build({args.size!r}, {model!r})"
        subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
        print(f"built {model} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    write_tokenizer(model, published_config(args.size)["vocab_size"])
    weights = weight_bytes(model)
    figures["weights_gb"] = round(weights / 1e9, 3)
    images, pairs = write_inputs(work)
    ref_pairs = os.path.join(work, "pairs.ref.jsonl")
    libraries = measure("libraries", [sys.executable, "-c", "import torch, transformers, peft, trl"], env=env)
    figures["libraries_rss_gb"] = round(libraries.peak_rss_mb * 2**20 / 1e9, 3)
    # the same commands on the shrunken MobileVLM-v2 fixture (same classes, processor and 144 image tokens,
    # 0.2 M parameters): what a pass costs besides its weights (libraries, processing)
    shrunken = os.path.join(work, "mobilevlm_v2-shrunken")
    if not os.path.isfile(os.path.join(shrunken, "config.json")):
        from clipdpo_mini.models.families import build_family

        build_family("mobilevlm_v2", shrunken)

    def commands(checkpoint: str, tag: str) -> dict[str, list[str]]:
        return {
            "caption": clipdpo("caption", images, "-m", checkpoint, "--device", "cpu", "--dtype", "bf16",
                               "--prompts", os.path.join(work, "prompt.txt"), "--max-new-tokens", "8",
                               "--seed", "0", "-q", "-o", os.path.join(work, f"captions{tag}.jsonl")),
            "ref-logps": clipdpo("ref-logps", pairs, "-m", checkpoint, "--device", "cpu", "--precision",
                                 "bf16", "--batch-size", "2", "-q", "-o", ref_pairs + tag),
            "lora": clipdpo("train", ref_pairs + tag, "--model", checkpoint, "--output-dir",
                            os.path.join(work, f"lora{tag}"), "--overwrite", "--lora", "--precision", "bf16",
                            "--max-steps", "1", "--batch-size", "1", "--per-device-batch-size", "1",
                            "--num-workers", "0", "--save-adapter-only", "-q"),
        }  # fmt: skip

    for name in args.passes.split(","):
        base = measure(f"{name} (shrunken)", commands(shrunken, ".shrunken")[name], env=env)
        m = measure(name, commands(model, "")[name], env=env)
        rss, base_rss = m.peak_rss_mb * 2**20, base.peak_rss_mb * 2**20
        figures["passes"][name] = {
            "seconds": round(m.seconds, 1),
            "peak_rss_gb": round(rss / 1e9, 3),
            "ratio_to_weights": round(rss / weights, 3),
            "shrunken_peak_rss_gb": round(base_rss / 1e9, 3),
            "ratio_beyond_shrunken": round((rss - base_rss) / weights, 3),
        }
        if args.before and name != "lora":  # the old code refuses --lora with precomputed log-probs
            old = measure(f"{name} (before)", commands(model, ".before")[name],
                          env={**env, "PYTHONPATH": os.path.abspath(args.before)})  # fmt: skip
            figures["passes"][name]["before_peak_rss_gb"] = round(old.peak_rss_mb * 2**20 / 1e9, 3)
            figures["passes"][name]["before_seconds"] = round(old.seconds, 1)
        print(f"{name}: {json.dumps(figures['passes'][name])}", file=sys.stderr, flush=True)
    figures["seven_b"] = seven_b()
    done = figures["passes"]
    inference = [done[p]["ratio_to_weights"] for p in ("caption", "ref-logps") if p in done]
    figures["inference_target_met"] = all(r <= INFERENCE_TARGET for r in inference)
    text = json.dumps(figures, indent=1)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
