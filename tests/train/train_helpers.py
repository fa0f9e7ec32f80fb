"""Helpers shared by the train tests (`from tests.train.train_helpers import`; fixtures: conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import run_text_cli

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


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """The real `clipdpo` command in a subprocess (one thread, unbuffered, no tokenizer threads)."""
    env = {"TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    return run_text_cli(*args, env=env, timeout=timeout)


def main_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """`clipdpo ARGS` through the real entry point in this process: (exit code, stdout, stderr)."""
    from clipdpo_cli.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err
