"""Fixtures for the generation tests: tiny random models built once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from clipdpo_cli.testing.tiny_llava import build_tiny_llava

    return build_tiny_llava(str(tmp_path_factory.mktemp("tiny-llava")))


@pytest.fixture(scope="session")
def tiny_lvlm(tiny_llava_dir: str):
    from clipdpo_cli.models.lvlm import load_lvlm

    return load_lvlm(tiny_llava_dir, device="cpu")


@pytest.fixture(scope="session")
def color_images():
    from PIL import Image

    colors = ["red", "green", "blue", "white"]
    return [Image.new("RGB", (48 + 8 * i, 40), color) for i, color in enumerate(colors)]
