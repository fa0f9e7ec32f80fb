"""Trainer callbacks for what `clipdpo train` shows and keeps: the progress display (io.progress: a bar with
steps/s, time left and the latest loss on a terminal, a plain line every --progress-every seconds off one),
a log entry at the last step, so the summary's first/last loss and reward margin exist however few steps
ran (fewer than --logging-steps logged nothing before), the metrics as one line per log on stderr instead of
transformers' printer, and the step timer of the summary's median_step_seconds."""

from __future__ import annotations

from typing import Any

from clipdpo_cli.io.progress import DEFAULT_EVERY, Progress


def loss_note(logs: dict[str, Any]) -> str | None:
    """'loss 0.6931, margin 0.0123' from a log entry that has a loss; None otherwise."""
    loss = logs.get("loss")
    if not isinstance(loss, (int, float)):
        return None
    margin = logs.get("rewards/margins")
    extra = f", margin {margin:.4g}" if isinstance(margin, (int, float)) else ""
    return f"loss {loss:.4g}{extra}"


def train_callbacks(quiet: bool = False, every: float = DEFAULT_EVERY) -> list[Any]:
    """[the progress display, the last-step log] as transformers TrainerCallbacks."""
    from transformers.trainer_callback import TrainerCallback

    class TrainProgress(TrainerCallback):
        """Rank 0 shows the optimizer steps done of `state.max_steps`, their rate, time left, latest loss."""

        def __init__(self) -> None:
            self.progress: Progress | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.is_world_process_zero:
                self.progress = Progress(
                    "train", unit="steps", total=state.max_steps, quiet=quiet, every=every
                )
                self.progress.update(state.global_step)  # a resumed run starts at its checkpoint's step
                self.progress.__enter__()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.progress is not None:
                self.progress.update(state.global_step)

        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
        ) -> None:
            note = loss_note(logs or {})
            if self.progress is not None and note is not None:
                self.progress.update(note=note)

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.progress is not None:
                self.progress.__exit__(None, None, None)
                self.progress = None

    class LogLastStep(TrainerCallback):
        """Have the trainer log (average and record its metrics) at the run's last optimizer step."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            if state.max_steps and state.global_step >= state.max_steps:
                control.should_log = True
            return control

    return [TrainProgress(), LogLastStep()]


def step_timer() -> Any:
    """A trainer callback timing each optimizer step; `median()` leaves out the first (warm-up) step."""
    import statistics
    import time

    from transformers.trainer_callback import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.started: float | None = None

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.started is not None:
                self.seconds.append(time.perf_counter() - self.started)

        def median(self) -> float | None:
            timed = self.seconds[1:] or self.seconds
            return round(statistics.median(timed), 4) if timed else None

    return StepTimer()


def quiet_callbacks(trainer: Any, quiet: bool) -> None:
    """Metrics as one compact line per log on stderr (rank 0); stdout stays for the JSON summary."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    from clipdpo_cli.train.log import log

    class StderrLog(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
        ) -> None:
            if not state.is_world_process_zero or not logs:
                return
            keys = ("loss", "rewards/margins", "rewards/accuracies", "learning_rate", "train_runtime")
            shown = ", ".join(f"{k} {logs[k]:.4g}" for k in keys if isinstance(logs.get(k), (int, float)))
            log(f"step {state.global_step}/{state.max_steps}: {shown}")

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if not quiet:
        trainer.add_callback(StderrLog())
