"""Fixtures for the AMBER tests: the benchmark's real annotation files (skipped when absent, failed in CI)
and a stand-in AMBER folder with generated images."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.eval.amber.amber_helpers import require_shared_amber


@pytest.fixture(scope="session")
def shared_amber() -> Path:
    return require_shared_amber()


@pytest.fixture(scope="session")
def amber_data(shared_amber: Path):
    from clipdpo_cli.eval.amber.data import load_amber

    return load_amber(str(shared_amber))


@pytest.fixture(scope="session")
def tiny_amber(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.fixtures.tiny_amber import build_tiny_amber

    return build_tiny_amber(str(tmp_path_factory.mktemp("amber")))
