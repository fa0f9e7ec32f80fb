"""`clipdpo train`'s own lines on stderr: prefixed, and written by rank 0 only (io/log.py)."""

from __future__ import annotations

from clipdpo_cli.io.log import info


def log(message: str) -> None:
    """`clipdpo train: message`, from the main process only."""
    info("train", message)


def log_unless(quiet: bool, message: str) -> None:
    """A progress line (the run's header, where the model went), which --quiet leaves out."""
    if not quiet:
        log(message)
