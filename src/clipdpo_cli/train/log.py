"""`clipdpo train`'s own lines on stderr: prefixed, and written by rank 0 only."""

from __future__ import annotations

import os
import sys


def log(message: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"clipdpo train: {message}", file=sys.stderr, flush=True)


def log_unless(quiet: bool, message: str) -> None:
    """A progress line (the run's header, where the model went), which --quiet leaves out."""
    if not quiet:
        log(message)
