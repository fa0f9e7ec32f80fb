"""Fixtures for the train tests: one tiny LLaVA per session and a learnable toy preference set of pairs."""

from __future__ import annotations

import pytest
from train_helpers import write_toy_pairs


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory) -> str:
    from clipdpo_cli.testing.tiny_llava import build_tiny_llava

    return build_tiny_llava(str(tmp_path_factory.mktemp("tiny-llava")))


@pytest.fixture(scope="session")
def toy_pairs(tmp_path_factory) -> str:
    return write_toy_pairs(str(tmp_path_factory.mktemp("pairs")))
