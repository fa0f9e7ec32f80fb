"""Fixtures for the AMBER tests: the benchmark's real annotation files (skipped when absent), a stand-in
AMBER folder with generated images, and the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = str(REPO / "src")


def shared_amber_dir() -> Path | None:
    """../shared/amber beside the repository (a CI clone), or two levels up (a git worktree)."""
    for base in (REPO.parent, REPO.parent.parent):
        path = base / "shared" / "amber"
        if (path / "annotations.json").is_file():
            return path
    return None


@pytest.fixture(scope="session")
def shared_amber() -> Path:
    path = shared_amber_dir()
    if path is None:
        pytest.skip("AMBER annotation files (../shared/amber) not available")
    return path


@pytest.fixture(scope="session")
def amber_data(shared_amber: Path):
    from clipdpo_cli.eval.amber.data import load_amber

    return load_amber(str(shared_amber))


@pytest.fixture(scope="session")
def tiny_amber(tmp_path_factory: pytest.TempPathFactory) -> str:
    from clipdpo_cli.testing.tiny_amber import build_tiny_amber

    return build_tiny_amber(str(tmp_path_factory.mktemp("amber")))


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
