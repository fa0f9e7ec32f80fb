"""`clipdpo train` under accelerate with 2 processes (DDP, gloo, CPU) and under DeepSpeed ZeRO-3 (1 process).

Every run sees the same 4 pairs per optimizer step as the one-process run with 2 accumulation steps, so the
loss of every step must equal the one-process loss: that checks the gradients are really shared, and the saved
weights must equal the one-process ones. Two CPU processes under ZeRO-3 work too once DeepSpeed's own
communication layer is handed accelerate's process group (loading.deepspeed_comm_ready).
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

    from clipdpo_cli.train.loading import load_policy

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


@pytest.mark.slow
def test_deepspeed_zero3_lora_merges_the_gathered_weights(tiny_llava, toy_pairs, tmp_path):
    """ZeRO-3 leaves each parameter an empty placeholder outside its partition: the adapter is merged into
    the gathered weights (trainer.gathered), so the saved model is the base plus a rank-r update of exactly
    the LoRA targets, everything else (the frozen vision tower included) unchanged."""
    import re

    import torch

    from clipdpo_cli.train.deepspeed_configs import resolve_deepspeed
    from clipdpo_cli.train.loading import load_policy
    from clipdpo_cli.train.lora import lora_targets

    with open(resolve_deepspeed(ZERO3)) as fh:
        config = json.load(fh)
    # "auto" keeps parameters under 10 x hidden size whole on every process: the tiny model's all are
    config["zero_optimization"]["stage3_param_persistence_threshold"] = 0
    (tmp_path / "zero3.json").write_text(json.dumps(config))
    out = str(tmp_path / "zero3lora")
    proc = train(tiny_llava, toy_pairs, out, "--deepspeed", str(tmp_path / "zero3.json"), "--lora",
                 "--lora-r", "4", "--learning-rate", "5e-2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads(proc.stdout)["reference"] == "adapter"
    base_model = load_policy(tiny_llava)
    targets = re.compile(lora_targets(base_model))
    base, merged = base_model.state_dict(), load_policy(out).state_dict()
    assert base.keys() == merged.keys()
    assert all(merged[k].shape == base[k].shape for k in base)  # full tensors, not ZeRO-3 placeholders
    changed = {k for k in base if not torch.equal(base[k], merged[k])}
    lora_weights = {k for k in base if targets.fullmatch(k.removesuffix(".weight"))}
    assert changed and changed <= lora_weights
    for key in changed:  # the merged update is the adapter's B @ A: rank <= r
        assert 0 < torch.linalg.matrix_rank(merged[key] - base[key], atol=1e-6) <= 4
