"""The one stderr voice of clipdpo: every line written for a person (notes, warnings, tables, summaries,
errors) goes through here; data go to stdout or files, never to stderr.

- `say(message)` writes a line as given (a table, a run's summary); `info` / `note` / `warning` put the
  command's prefix before it: `clipdpo eval-amber: ...`, `clipdpo eval-amber: note: ...`,
  `clipdpo train: warning: ...` (`clipdpo: ...` where no command is named: a model loader's note).
- `quiet` (the command's --quiet) silences everything but errors.
- Under torch.distributed / accelerate only the main process speaks (RANK, else LOCAL_RANK, unset or 0), so
  N processes do not say the same line N times; `error` speaks in every process (each failure is its own).
"""

from __future__ import annotations

import os
import sys


def is_main_process() -> bool:
    """Whether this process is rank 0 of a distributed launch (or not in one): RANK, else LOCAL_RANK."""
    for name in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(name, "").strip()
        if value:
            try:
                return int(value) == 0
            except ValueError:
                return True
    return True


def prefix(command: str = "") -> str:
    """`clipdpo COMMAND` (`clipdpo` alone for no command): what every line of a command starts with."""
    return f"clipdpo {command}".rstrip()


def _write(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def say(message: str, quiet: bool = False) -> None:
    """`message` as given, on stderr, unless `quiet` or not the main process."""
    if not quiet and is_main_process():
        _write(message)


def info(command: str, message: str, quiet: bool = False) -> None:
    """`clipdpo COMMAND: message` (see `say`)."""
    say(f"{prefix(command)}: {message}", quiet)


def note(command: str, message: str, quiet: bool = False) -> None:
    """`clipdpo COMMAND: note: message` (see `say`)."""
    say(f"{prefix(command)}: note: {message}", quiet)


def warning(command: str, message: str, quiet: bool = False) -> None:
    """`clipdpo COMMAND: warning: message` (see `say`)."""
    say(f"{prefix(command)}: warning: {message}", quiet)


def error(command: str, message: str, label: str = "error") -> None:
    """`clipdpo COMMAND: error: message` (`label` '' for none: an interruption), in every process, quiet
    or not: the one line a failure ends with."""
    _write(f"{prefix(command)}: {label}: {message}" if label else f"{prefix(command)}: {message}")
