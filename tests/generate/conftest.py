"""Fixtures for the generation tests: tiny random models built once per session."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src"))


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


def run_cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The real `clipdpo` command in a subprocess (offline, one thread)."""
    full_env = {
        **os.environ,
        "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "clipdpo_cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )
