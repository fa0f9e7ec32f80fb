"""`clipdpo train` under accelerate with 2 processes (DDP, gloo, CPU) and under DeepSpeed ZeRO-3 (1 process).

Every run sees the same 4 pairs per optimizer step as the one-process run with 2 accumulation steps, so the
loss of every step must equal the one-process loss: that checks the gradients are really shared, and the saved
weights must equal the one-process ones. Two CPU processes under ZeRO-3 work too once DeepSpeed's own
communication layer is handed accelerate's process group (trainer.deepspeed_comm_ready).
The first ZeRO-3 run on a machine compiles DeepSpeed's CPU shared-memory op (cached afterwards).
"""

from __future__ import annotations

import json
import os

import pytest

from tests.train.train_helpers import QUICK_TRAINING, read_json, run_cli

STEPS = ("--max-steps", "3", *QUICK_TRAINING, "--save-steps", "100")
ZERO3 = "zero3"  # the config shipped in the package (clipdpo_cli/data/deepspeed/zero3.json)


def train(model: str, pairs: str, out: str, *args: str):
    """`clipdpo train` of the 3 quick steps, 2 pairs per device, into `out`, with the run's own options."""
    args = ("--model", model, "--output-dir", out, "--per-device-batch-size", "2", *args, *STEPS)
    return run_cli("train", pairs, *args, timeout=500)


def losses(out: str) -> list[float]:
    history = read_json(os.path.join(out, "train_summary.json"))["log_history"]
    return [h["loss"] for h in history if "loss" in h]


def same_weights(a: str, b: str) -> bool:
    """Both saved models load (through from_pretrained, as users do) to the same weights."""
    import torch

    from clipdpo_cli.train.trainer import load_policy

    wa, wb = load_policy(a).state_dict(), load_policy(b).state_dict()
    return wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-4) for k in wa)


@pytest.fixture(scope="module")
def single(tiny_llava, toy_pairs, tmp_path_factory) -> tuple[list[float], str]:
    from clipdpo_cli.train.settings import TrainSettings
    from clipdpo_cli.train.trainer import run_training

    out = str(tmp_path_factory.mktemp("single"))
    s = TrainSettings(
        pairs=toy_pairs,
        model=tiny_llava,
        output_dir=out,
        max_steps=3,
        batch_size=4,
        per_device_batch_size=2,
        learning_rate=1e-3,
        warmup_ratio=0.0,
        logging_steps=1,
        gradient_checkpointing=False,
        save_steps=100,
        quiet=True,
    )
    history = run_training(s).log_history
    return [h["loss"] for h in history if "loss" in h], out


@pytest.mark.slow
def test_two_processes_ddp(single, tiny_llava, toy_pairs, tmp_path):
    out = str(tmp_path / "ddp")
    proc = train(tiny_llava, toy_pairs, out, "--num-processes", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "launching 2 process(es)" in proc.stderr
    assert "(2 x 1 accumulation x 2 processes)" in proc.stderr
    summary = json.loads(proc.stdout)  # one summary: only rank 0 prints
    assert summary["steps"] == 3
    assert losses(out) == pytest.approx(single[0], abs=2e-4)
    assert losses(out)[-1] < losses(out)[0] - 0.1
    assert same_weights(out, single[1])


@pytest.mark.slow
def test_deepspeed_zero3_one_process(single, tiny_llava, toy_pairs, tmp_path):
    from clipdpo_cli.models.lvlm import load_lvlm

    out = str(tmp_path / "zero3")
    proc = train(tiny_llava, toy_pairs, out, "--deepspeed", ZERO3)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "(2 x 2 accumulation x 1 processes)" in proc.stderr
    assert losses(out) == pytest.approx(single[0], abs=2e-4)
    assert same_weights(out, single[1])  # the 16-bit gather on save gives the full trained weights
    checkpoint = os.path.join(out, "checkpoint-3")
    assert os.path.isdir(os.path.join(checkpoint, "global_step3"))  # a DeepSpeed (ZeRO) checkpoint
    lvlm = load_lvlm(out, device="cpu")  # the gathered 16-bit weights reload as a normal model
    assert sum(p.numel() for p in lvlm.model.parameters()) > 10_000


@pytest.mark.slow
def test_deepspeed_zero3_two_processes(single, tiny_llava, toy_pairs, tmp_path):
    out = str(tmp_path / "zero3x2")
    proc = train(tiny_llava, toy_pairs, out, "--deepspeed", ZERO3, "--num-processes", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "(2 x 1 accumulation x 2 processes)" in proc.stderr
    assert losses(out) == pytest.approx(single[0], abs=2e-4)
    assert same_weights(out, single[1])
