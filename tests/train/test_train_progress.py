"""What `clipdpo train` shows and keeps: progress lines with steps/s, time left and the loss; nothing
at all on stderr under -q (no library bars or warnings either); the same summary keys however few steps."""

from __future__ import annotations

import json
import os
import re
from types import SimpleNamespace

import pytest

from clipdpo_cli.train.progress_callback import loss_note, train_callbacks
from tests.train.train_helpers import QUICK_TRAINING, main_in_process, read_json, run_cli

# Two optimizer steps, logged every 10: before, nothing was logged and the summary lacked first/last loss.
SHORT = (
    "--max-steps", "2", "--per-device-batch-size", "2", *QUICK_TRAINING[:-2], "--logging-steps", "10",
    "--num-workers", "0",
)  # fmt: skip
SUMMARY_KEYS = {
    "output_dir", "pairs", "skipped", "steps", "reference", "peak_gpu_memory_gb", "median_step_seconds",
    "first_loss", "last_loss", "first_rewards/margins", "last_rewards/margins", "first_rewards/accuracies",
    "last_rewards/accuracies", "train_loss", "train_runtime", "train_samples_per_second",
    "learning_rate", "vision_tower", "projector", "dtype", "trainable_parameters",
}  # fmt: skip


def test_quiet_train_prints_nothing_on_stderr_and_keeps_every_summary_key(tiny_llava, toy_pairs, tmp_path):
    out = str(tmp_path / "q")
    proc = run_cli("train", toy_pairs, "--model", tiny_llava, "--output-dir", out, *SHORT, "-q")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # before: FutureWarnings of each save, DeepSpeed's accelerator warning, "Writing model shards" bars
    assert proc.stderr == ""
    summary = json.loads(proc.stdout)
    assert set(summary) == SUMMARY_KEYS and summary["steps"] == 2
    # the last step was logged although --logging-steps is 10: one entry, the mean over both steps
    assert summary["first_loss"] == summary["last_loss"] == pytest.approx(summary["train_loss"], abs=1e-6)
    assert summary["first_rewards/margins"] is not None and summary["last_rewards/accuracies"] is not None
    saved = read_json(os.path.join(out, "train_summary.json"))
    assert set(saved) == SUMMARY_KEYS | {"log_history"}
    assert [h["step"] for h in saved["log_history"] if "loss" in h] == [2]


def test_train_progress_lines_off_a_terminal(tiny_llava, toy_pairs, tmp_path, capsys):
    code, _, err = main_in_process(
        capsys, "train", toy_pairs, "--model", tiny_llava, "--output-dir", str(tmp_path / "p"), *SHORT,
        "--progress-every", "0.05",
    )  # fmt: skip
    assert code == 0, err[-3000:]
    lines = [line for line in err.splitlines() if re.match(r"clipdpo train: \d/2 steps \(", line)]
    assert lines, err[-3000:]
    assert re.fullmatch(
        r"clipdpo train: \d/2 steps \(\d+\.\d%\), [\d.]+ steps/s, .*\d:\d\d:\d\d elapsed.*", lines[-1]
    )
    assert "step 2/2: loss" in err  # the last step's log line


def fake_state(step: int, max_steps: int = 10, rank0: bool = True) -> SimpleNamespace:
    return SimpleNamespace(global_step=step, max_steps=max_steps, is_world_process_zero=rank0)


def test_the_callback_counts_steps_from_a_resume_and_shows_the_latest_loss():
    progress, _ = train_callbacks(quiet=False, every=0)  # every 0 off a terminal: no lines, state kept
    control = SimpleNamespace(should_log=False)
    progress.on_train_begin(None, fake_state(3), control)
    assert progress.progress.state.done == 3 and progress.progress.state.total == 10
    progress.on_step_end(None, fake_state(4), control)
    progress.on_log(None, fake_state(4), control, logs={"loss": 0.69314, "rewards/margins": 0.01234})
    progress.on_log(None, fake_state(4), control, logs={"train_runtime": 1.0})  # no loss: note kept
    state = progress.progress.state
    assert state.count_text() == "4/10 steps" and state.note == "loss 0.6931, margin 0.01234"
    progress.on_train_end(None, fake_state(4), control)
    assert progress.progress is None


def test_only_rank_zero_shows_progress():
    progress, _ = train_callbacks(quiet=False, every=0)
    progress.on_train_begin(None, fake_state(0, rank0=False), SimpleNamespace())
    progress.on_step_end(None, fake_state(1, rank0=False), SimpleNamespace())
    assert progress.progress is None


def test_the_last_step_is_always_logged():
    _, last = train_callbacks()
    for step, want in ((1, False), (9, False), (10, True)):
        control = SimpleNamespace(should_log=False)
        last.on_step_end(None, fake_state(step), control)
        assert control.should_log is want, step


def test_loss_note():
    assert loss_note({"loss": 0.5}) == "loss 0.5"
    assert loss_note({"loss": 0.123456, "rewards/margins": 2.0}) == "loss 0.1235, margin 2"
    assert loss_note({"train_loss": 0.5}) is None


def test_final_metrics_always_has_the_same_keys():
    from clipdpo_cli.train.trainer import final_metrics

    history = [
        {"loss": 0.69, "rewards/margins": 0.0, "rewards/accuracies": 0.0, "step": 1},
        {"loss": 0.5, "step": 2},  # a log without reward figures
        {"loss": 0.4, "rewards/margins": 0.8, "rewards/accuracies": 1.0, "step": 3},
        {"train_loss": 0.53, "train_runtime": 2.0, "train_samples_per_second": 6.0, "step": 3},
    ]
    assert final_metrics(history) == {
        "first_loss": 0.69, "last_loss": 0.4, "first_rewards/margins": 0.0, "last_rewards/margins": 0.8,
        "first_rewards/accuracies": 0.0, "last_rewards/accuracies": 1.0,
        "train_loss": 0.53, "train_runtime": 2.0, "train_samples_per_second": 6.0,
    }  # fmt: skip
    empty = final_metrics([])
    assert set(empty) == set(final_metrics(history)) and set(empty.values()) == {None}
