"""Generations per second of `clipdpo caption --engine hf` (in-process, batched) vs `--engine openai` against
`transformers serve` on this machine's CPU (indicative only: a CPU run says nothing of vLLM on a GPU).

The same random LLaVA of the real classes (as benchmarks/bench_caption.py), the same images, greedy
decoding with a fixed length: every row is generated to --new-tokens (the model's end-of-turn id is
removed from the generation config's EOS ids, so no row stops early and both engines do the same work).
The served runs use one `transformers serve` per mode, started here on a free loopback port, warmed up by
one request (model load) before timing; the time is the stage's own (the summary line's seconds, from
the first record read to the last written: model loading and interpreter start-up are outside it).
Outputs are compared (greedy: the served texts must equal the in-process ones).

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_serving.py [--command caption|ask]
        [--inputs 32] [--new-tokens 32] [--batch-size 16] [--concurrency 16] [--threads 1]
        [--modes generate,continuous-batching]

`--command ask` times `ask` on a random Llama chat LLM (its replies are not JSON: every one goes to
--rejects, whose raw replies are compared) - `transformers serve --continuous-batching` batches LLMs only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time


def run_command(command: str, args: list[str], env: dict[str, str]) -> tuple[float, int, float]:
    """(stage seconds from the summary line, records written, wall seconds) of one `clipdpo COMMAND` run."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "clipdpo_cli", command, *args], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{command} failed: {result.stderr.strip()}")
    summary = result.stderr.strip().splitlines()[-1]
    match = re.search(r"(\d+) in, (\d+) out.*?; ([\d.]+) s$", summary)
    if match is None:
        raise SystemExit(f"no summary line in: {summary}")
    return float(match.group(3)), int(match.group(2)), wall


def never_stop(model: str) -> None:
    """Point the generation config's EOS at an id no row emits: every row runs to --max-new-tokens."""
    path = os.path.join(model, "generation_config.json")
    with open(path) as fh:
        config = json.load(fh)
    config["eos_token_id"] = 10**6 - 1
    with open(path, "w") as fh:
        json.dump(config, fh)


def caption_inputs(tmp: str, args: argparse.Namespace) -> tuple[str, list[str]]:
    """A random LLaVA and its `caption` arguments (one prompt per image)."""
    from PIL import Image

    from clipdpo_mini.models.tiny_llava import build_tiny_llava

    model = build_tiny_llava(
        os.path.join(tmp, "llava"),
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=max(1, args.hidden // 64),
        vision_hidden_size=128,
        vision_layers=2,
        image_size=32,
        patch_size=8,
    )
    never_stop(model)
    images = os.path.join(tmp, "imgs")
    os.makedirs(images)
    for i in range(args.inputs):
        color = (i * 37 % 256, i * 91 % 256, i * 53 % 256)
        Image.new("RGB", (96 + i % 5 * 16, 80), color).save(os.path.join(images, f"{i:03d}.png"))
    prompts = os.path.join(tmp, "prompts.txt")
    with open(prompts, "w") as fh:
        fh.write("Describe this image in one or two sentences.\n")
    return model, [images, "-m", model, "--prompts", prompts]


def ask_inputs(tmp: str, args: argparse.Namespace) -> tuple[str, list[str]]:
    """A random Llama chat LLM and `ask` arguments: caption records of `inputs` images, 2 each."""
    from clipdpo_mini.models.tiny_llm import build_tiny_llm

    model = build_tiny_llm(
        os.path.join(tmp, "llm"),
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=max(1, args.hidden // 64),
    )
    never_stop(model)
    captions = os.path.join(tmp, "captions.jsonl")
    with open(captions, "w") as fh:
        for i in range(args.inputs):
            for k in range(2):
                fh.write(
                    json.dumps(
                        {
                            "id": f"{i}-{k}",
                            "image": f"{i}.jpg",
                            "kind": "caption",
                            "text": f"A red ball number {i} on the grass, view {k}.",
                        }
                    )
                    + "\n"
                )
    return model, [captions, "-m", model, "--rejects", os.path.join(tmp, "rejects.jsonl")]


def texts(path: str) -> list[str]:
    """The generated texts of a caption file or of ask's rejects (the raw replies of a random LLM)."""
    with open(path) as fh:
        return [r.get("text", r.get("reply")) for r in map(json.loads, fh)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--command", choices=("caption", "ask"), default="caption")
    parser.add_argument(
        "--inputs", type=int, default=32, help="images (caption) or images' caption groups (ask)"
    )
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16, help="--engine hf rows per generate call")
    parser.add_argument("--concurrency", type=int, default=16, help="--engine openai requests in flight")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, both engines")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument(
        "--modes",
        default="generate,continuous-batching",
        help="transformers serve modes to time: generate (one request at a time), "
        "continuous-batching (LLMs only: an LVLM falls back to generate)",
    )
    args = parser.parse_args()

    from clipdpo_mini.serving import transformers_server

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    command = args.command
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        model, inputs = (caption_inputs if command == "caption" else ask_inputs)(tmp, args)
        sampling = ["--temperature", "0", "--max-new-tokens", str(args.new_tokens)]
        out_of = {"caption": lambda out: out, "ask": lambda out: os.path.join(tmp, "rejects.jsonl")}[command]
        rows = []
        hf_out = os.path.join(tmp, "hf.jsonl")
        hf_args = [*inputs, *sampling, "--device", "cpu", "--batch-size", str(args.batch_size), "-o", hf_out]
        seconds, _, wall = run_command(command, hf_args, env)
        expected = texts(out_of(hf_out))
        rows.append((f"--engine hf (batch {args.batch_size})", seconds, len(expected), wall, True))
        for i, mode in enumerate(m for m in args.modes.split(",") if m):
            extra = ("--continuous-batching",) if mode == "continuous-batching" else ()
            log = os.path.join(tmp, f"serve-{mode}.log")
            with transformers_server(log=log, threads=args.threads, extra=extra) as url:
                served = ["--engine", "openai", "--base-url", url]
                warm = [
                    *inputs,
                    "--temperature",
                    "0",
                    "--max-new-tokens",
                    "2",
                    *served,
                    "--shard",
                    "0/4",
                    "-o",
                    os.path.join(tmp, f"warm{i}.jsonl"),
                ]
                run_command(command, warm, env)  # loads the model in the server
                out = os.path.join(tmp, f"openai-{mode}.jsonl")
                args_served = [*inputs, *sampling, *served, "--concurrency", str(args.concurrency), "-o", out]
                seconds, _, wall = run_command(command, args_served, env)
            got = texts(out_of(out))
            rows.append(
                (
                    f"--engine openai, transformers serve {mode} (concurrency {args.concurrency})",
                    seconds,
                    len(got),
                    wall,
                    got == expected,
                )
            )

    base = rows[0][2] / rows[0][1]
    unit = "captions" if command == "caption" else "replies"
    print(
        f"{command}: {args.inputs} inputs, {args.new_tokens} new tokens each, greedy, torch threads "
        f"{args.threads}, hidden {args.hidden} x {args.layers} layers"
    )
    print(f"{'engine':<72} {'stage s':>8} {unit + '/s':>10} {'vs hf':>6} {'wall s':>7}  same texts")
    for name, seconds, n, wall, same in rows:
        rate = n / seconds
        print(f"{name:<72} {seconds:>8.2f} {rate:>10.2f} {rate / base:>6.2f} {wall:>7.1f}  {same}")


if __name__ == "__main__":
    main()
