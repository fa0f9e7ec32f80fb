"""Helpers shared by the AMBER tests: where the real annotation files are, and the CLI in a subprocess."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_text_cli as run_cli  # noqa: F401 - shared by the tests here

REPO = Path(__file__).resolve().parents[2]


def shared_amber_dir() -> Path | None:
    """../shared/amber beside the repository (a CI clone), or two levels up (a git worktree)."""
    for base in (REPO.parent, REPO.parent.parent):
        path = base / "shared" / "amber"
        if (path / "annotations.json").is_file():
            return path
    return None
