"""Fixtures for the generation tests: tiny random models built once per test run (tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_llava_dir(tiny_llava_path: str) -> str:
    return tiny_llava_path


@pytest.fixture(scope="session")
def tiny_lvlm(tiny_llava_dir: str):
    from clipdpo_cli.models.lvlm import load_lvlm

    return load_lvlm(tiny_llava_dir, device="cpu")


@pytest.fixture(scope="session")
def color_images():
    from PIL import Image

    colors = ["red", "green", "blue", "white"]
    return [Image.new("RGB", (48 + 8 * i, 40), color) for i, color in enumerate(colors)]


@pytest.fixture(scope="session")
def tiny_llm_dir(tiny_llm_path) -> str:
    return tiny_llm_path()


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Four good images (one in a subfolder, mixed sizes and formats) and one corrupt file."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imgs")
    (root / "sub").mkdir()
    Image.new("RGB", (40, 30), "red").save(root / "a.png")
    Image.new("RGB", (64, 64), "green").save(root / "b.jpg")
    Image.new("L", (20, 50), 128).save(root / "c.webp")
    Image.new("RGB", (33, 33), "blue").save(root / "sub" / "d.png")
    (root / "broken.jpg").write_bytes(b"not an image at all")
    (root / "notes.txt").write_text("ignored")
    return str(root)


@pytest.fixture(scope="session")
def tiny_llm_json_dir(tiny_llm_path) -> str:
    """A tiny Llama taught to answer every prompt with DEMO_REPLY (two questions as JSON)."""
    from clipdpo_cli.testing.tiny_llm import DEMO_REPLY

    return tiny_llm_path(reply=DEMO_REPLY, num_layers=1)
