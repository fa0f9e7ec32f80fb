"""DPO (and KTO) fine-tuning of an LVLM on pair records with TRL, under whatever accelerate launched us with.

`run_training(settings)` is the whole `clipdpo train` minus option parsing: it validates the pairs, builds the
TRL config (the paper's hyperparameters by default), loads the policy and, unless reference log-probs were
precomputed, a reference copy from the same directory, trains, and saves model + processor to the output
directory so that `clipdpo caption --model DIR` loads it like any other model. The parts live by concern:
build.py (the configured trainer), loading.py (models, processor, dtypes), lora.py, dpo_trainer.py
(ClipdpoDPOTrainer), checkpoint.py (resume, save), progress_callback.py (what the run shows); this module
drives a run and writes its summary.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.train import model_card
from clipdpo_cli.train.build import build_trainer
from clipdpo_cli.train.checkpoint import finished_at, resolve_checkpoint, save_model
from clipdpo_cli.train.log import log, log_unless
from clipdpo_cli.train.progress_callback import quiet_callbacks, step_timer, train_callbacks
from clipdpo_cli.train.settings import TrainSettings


@dataclass
class TrainResult:
    output_dir: str
    pairs: int
    skipped: dict[str, int]
    steps: int
    log_history: list[dict[str, Any]]
    reference: str  # "live", "precomputed" or "adapter"
    peak_gpu_memory_gb: float | None = None  # this process's peak allocated CUDA memory
    median_step_seconds: float | None = None  # optimizer steps after the first (warm-up) one
    facts: dict[str, Any] | None = None  # lr, vision tower / projector, dtype, trainable parameters


def prepare_output(trainer: Any, s: TrainSettings) -> None:
    """Once the model loaded and the trainer is configured (every check passed): the main process checks
    the folder again, removes the previous run (--overwrite) and records this one; the others wait."""
    from clipdpo_cli.train.output_dir import output_plan, prepare_output_dir

    if trainer.accelerator.is_main_process:
        prepare_output_dir(output_plan(s))
    trainer.accelerator.wait_for_everyone()


def run_training(s: TrainSettings) -> TrainResult:
    checkpoint = resolve_checkpoint(s.resume_from_checkpoint, s.output_dir)  # once: the policy, the resume
    done = finished_at(checkpoint, s) if checkpoint else None
    if done is not None:  # resuming a finished run: nothing to train, the saved model is left as it is
        log(f"{checkpoint} is at step {done[0]}, the run's last: nothing to train")
        return TrainResult(s.output_dir, 0, {}, done[0], done[1], reference="none (nothing trained)")
    trainer, ref_mode, pairs = build_trainer(s, checkpoint=checkpoint)
    prepare_output(trainer, s)
    effective = log_header(s, trainer, len(pairs), ref_mode)
    facts = trainer.clipdpo_facts
    quiet_callbacks(trainer, s.quiet)
    for callback in train_callbacks(s.quiet, s.progress_every):
        trainer.add_callback(callback)
    card = model_card.install(trainer, model_card.run_facts(s, pairs, ref_mode, effective, facts))
    timer = step_timer()
    trainer.add_callback(timer)
    train(trainer, checkpoint)
    merge = s.lora and not s.save_adapter_only
    save_model(trainer, s.output_dir, merge_lora=merge, base_id=card.base_model_id)
    model_card.finish(trainer, card, s.output_dir)  # README.md, then the --push-to-hub upload
    result = TrainResult(
        output_dir=s.output_dir,
        pairs=len(pairs),
        skipped=pairs.skipped,
        steps=trainer.state.global_step,
        log_history=list(trainer.state.log_history),
        reference=ref_mode,
        peak_gpu_memory_gb=peak_gpu_memory(),
        median_step_seconds=timer.median(),
        facts=facts,
    )
    # Close trackers and the process group in order: left to interpreter exit, the gloo threads of a
    # multi-process run can abort the process after a successful save ("terminate called without an
    # active exception", seen once with 2-process ZeRO-3 on CPU).
    trainer.accelerator.end_training()
    return result


def log_header(s: TrainSettings, trainer: Any, pairs: int, ref_mode: str) -> int:
    """The run's two header lines (unless --quiet); returns the effective batch size."""
    args = trainer.args
    effective = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    log_unless(
        s.quiet,
        f"{pairs} pairs, loss {s.loss}, beta {args.beta}, lr {args.learning_rate}, "
        f"effective batch {effective} "
        f"({args.per_device_train_batch_size} x {args.gradient_accumulation_steps} accumulation x "
        f"{args.world_size} processes), reference: {ref_mode}",
    )
    facts = trainer.clipdpo_facts
    log_unless(
        s.quiet,
        f"vision tower {facts['vision_tower']}, projector {facts['projector']}, "
        f"{'LoRA base' if s.lora else 'trained weights'} in {facts['dtype']}, "
        f"{facts['trainable_parameters']:,} trainable parameters",
    )
    return effective


def train(trainer: Any, checkpoint: str | None) -> None:
    """trainer.train, resumed from `checkpoint` when given; TRL's max_length-cuts-image error in one line."""
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    except ValueError as exc:
        if "max_length" in str(exc) and "image" in str(exc):
            raise InputError(str(exc)) from None
        raise


def peak_gpu_memory() -> float | None:
    """The most CUDA memory this process had allocated (GB), None without a GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to file descriptor 1 to stderr meanwhile (loggers hold sys.stdout itself)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


SUMMARY_METRICS = ("loss", "rewards/margins", "rewards/accuracies")
RUN_FACTS = ("learning_rate", "vision_tower", "projector", "dtype", "trainable_parameters")  # None: untrained
RUN_FIGURES = ("train_loss", "train_runtime", "train_samples_per_second")


def final_metrics(history: list[dict[str, Any]]) -> dict[str, Any]:
    """First and last logged loss / reward margin / reward accuracy, and the run's own train_* figures.

    Always the same keys: a figure the run did not log (a loss without reward figures; a finished run
    resumed, which trains nothing) is None. The last step is always logged (progress_callback.LogLastStep).
    """
    logged = [h for h in history if "loss" in h]
    out: dict[str, Any] = {}
    for key in SUMMARY_METRICS:
        values = [h[key] for h in logged if key in h]
        out[f"first_{key}"] = values[0] if values else None
        out[f"last_{key}"] = values[-1] if values else None
    for key in RUN_FIGURES:
        out[key] = next((h[key] for h in reversed(history) if key in h), None)
    return out


def summary(result: TrainResult, quiet: bool = False) -> None:
    """The JSON summary on stdout (rank 0) and in OUTPUT_DIR/train_summary.json."""
    import json

    if int(os.environ.get("RANK", "0")) != 0:
        return
    data = {
        "output_dir": result.output_dir,
        "pairs": result.pairs,
        "skipped": result.skipped,
        "steps": result.steps,
        "reference": result.reference,
        "peak_gpu_memory_gb": result.peak_gpu_memory_gb,
        "median_step_seconds": result.median_step_seconds,
        **{key: (result.facts or {}).get(key) for key in RUN_FACTS},
        **final_metrics(result.log_history),
    }
    with open(os.path.join(result.output_dir, "train_summary.json"), "w") as fh:
        json.dump({**data, "log_history": result.log_history}, fh, indent=1)
    from clipdpo_cli.train.output_dir import finish_output_dir

    finish_output_dir(result.output_dir)  # the run's marker lists what it wrote
    print(json.dumps(data), flush=True)
    log_unless(quiet, f"saved to {result.output_dir} ({result.steps} steps)")
