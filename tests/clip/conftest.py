"""Fixtures for the CLIP stage tests: one tiny open_clip model and a few images, built once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_clip_name(tiny_clip_path) -> str:
    return tiny_clip_path(0)


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_name: str):
    from clipdpo_cli.models.clip import load_clip

    return load_clip(tiny_clip_name, device="cpu")


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Five small RGB images of different sizes and content, plus a corrupt one (bad.png)."""
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(40, 30), (32, 32), (64, 48), (20, 50), (33, 41)]):
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    (folder / "bad.png").write_bytes(b"not an image at all")
    return str(folder)


@pytest.fixture(scope="session")
def tiny_hf_scorer_name(request: pytest.FixtureRequest):
    """tiny_hf_scorer_name(kind) -> 'transformers:DIR': a tiny random CLIPModel / SiglipModel, built once."""
    from clipdpo_cli.testing.tiny_hf_scorer import build_tiny_hf_scorer
    from tests.tiny_models import cached_build, tiny_model_cache

    def get(kind: str = "clip") -> str:
        cache = tiny_model_cache(request.config)
        return cached_build(cache, f"tiny-hf-{kind}", build_tiny_hf_scorer, kind=kind)

    return get
