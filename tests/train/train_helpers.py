"""Helpers shared by the train tests (imported as `train_helpers`; fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import sys

import pytest

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src"))

# Training options that make a few steps on the tiny model learn fast and log every step.
QUICK_TRAINING = (
    "--batch-size", "4",
    "--learning-rate", "1e-3",
    "--warmup-ratio", "0",
    "--logging-steps", "1",
    "--no-gradient-checkpointing",
    "--num-workers", "0",
)  # fmt: skip


def write_toy_pairs(folder: str, n: int = 8) -> str:
    """A learnable toy preference: per image, 'red ball' (chosen) beats 'blue cube' (rejected)."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "pairs.jsonl")
    with open(path, "w") as fh:
        for i in range(n):
            img = os.path.join(folder, f"img{i}.png")
            Image.new("RGB", (20 + i, 18), color=(40 * i % 255, 100, 200 - 10 * i)).save(img)
            fh.write(
                json.dumps(
                    {
                        "id": f"p{i}",
                        "image": img,
                        "kind": "caption",
                        "prompt": "Describe the image.",
                        "chosen": "a red ball on a table",
                        "rejected": "a blue cube",
                        "margin": 3.0,
                    }
                )
                + "\n"
            )
    return path


def read_json(path: str):
    with open(path) as fh:
        return json.load(fh)


def read_lines(path: str) -> list[str]:
    with open(path) as fh:
        return fh.readlines()


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str, timeout: int = 300):
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "clipdpo_cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=timeout,
    )


def main_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """`clipdpo ARGS` through the real entry point in this process: (exit code, stdout, stderr)."""
    from clipdpo_cli.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err
