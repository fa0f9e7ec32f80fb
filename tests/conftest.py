"""Project-wide test helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("SLURM_ARRAY_TASK_ID", None)
    env.pop("SLURM_ARRAY_TASK_COUNT", None)
    env.update(extra)
    return env


def run_cli(args: list[str], input: bytes | str | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run `clipdpo ARGS` in a subprocess, as a user's shell would."""
    data = input.encode() if isinstance(input, str) else input
    return subprocess.run(
        [sys.executable, "-m", "clipdpo_cli", *args],
        input=data,
        capture_output=True,
        env=cli_env(**env),
        timeout=600,
    )


@pytest.fixture
def cli():
    return run_cli
