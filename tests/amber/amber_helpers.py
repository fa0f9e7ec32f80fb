"""Helpers shared by the AMBER tests: where the real annotation files are, and the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = str(REPO / "src")


def shared_amber_dir() -> Path | None:
    """../shared/amber beside the repository (a CI clone), or two levels up (a git worktree)."""
    for base in (REPO.parent, REPO.parent.parent):
        path = base / "shared" / "amber"
        if (path / "annotations.json").is_file():
            return path
    return None


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The real `clipdpo` command in a subprocess (offline, one thread)."""
    env = {
        **os.environ,
        "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "clipdpo_cli", *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
