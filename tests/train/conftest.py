"""Fixtures for the train tests: the tiny LLaVA (built once per run) and a learnable toy preference set."""

from __future__ import annotations

import pytest

from tests.train.train_helpers import write_toy_pairs


@pytest.fixture(scope="session")
def tiny_llava(tiny_llava_path: str) -> str:
    return tiny_llava_path


@pytest.fixture(scope="session")
def toy_pairs(tmp_path_factory) -> str:
    return write_toy_pairs(str(tmp_path_factory.mktemp("pairs")))
