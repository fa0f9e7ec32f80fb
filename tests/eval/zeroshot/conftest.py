"""Fixtures of the zero-shot tests: fake dataset layouts (built once per session) and a clean environment."""

from __future__ import annotations

import sys

import pytest

from tests.eval.zeroshot.zeroshot_fakes import BUILDERS


@pytest.fixture(scope="session")
def nine_root(tmp_path_factory):
    """One --data-root holding fake copies of all nine datasets; yields (root, expectations by key)."""
    root = tmp_path_factory.mktemp("nine")
    expected = {key: build(root) for key, build in BUILDERS.items()}
    return root, expected


@pytest.fixture
def no_clip_benchmark(monkeypatch):
    """Behave as if clip-benchmark were not installed (even where it is)."""
    from clipdpo_cli.eval.zeroshot import resources

    monkeypatch.setattr(resources, "clip_benchmark_file", lambda filename: None)


@pytest.fixture
def fake_cb(tmp_path, monkeypatch):
    """Install a FAKE clip_benchmark package (two JSON files) on sys.path; call it with the JSON contents."""
    import importlib

    from tests.eval.zeroshot.zeroshot_fakes import fake_clip_benchmark

    def install(classnames: dict, templates: dict) -> None:
        entry = fake_clip_benchmark(tmp_path / "site", classnames, templates)
        monkeypatch.setattr(sys, "path", [str(entry), *sys.path])
        importlib.invalidate_caches()

    return install


# ---------------------------------------------------------------------------------------------- shapes

SHAPES = {"red_circle": (220, 30, 30), "green_square": (30, 200, 40), "blue_triangle": (40, 60, 220)}
PER_CLASS = 4


def draw_shape(kind: str, color: tuple[int, int, int], offset: int):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (40, 40), (245, 245, 245))
    d = ImageDraw.Draw(img)
    a, b = 6 + offset, 30 + offset
    if kind == "circle":
        d.ellipse([a, a, b, b], fill=color)
    elif kind == "square":
        d.rectangle([a, a, b, b], fill=color)
    else:
        d.polygon([(a, b), ((a + b) // 2, a), (b, b)], fill=color)
    return img


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory):
    """A synthetic labelled set in ImageFolder layout: 3 coloured-shape classes x 4 images."""
    root = tmp_path_factory.mktemp("shapes") / "shapes"
    for cls, color in SHAPES.items():
        (root / cls).mkdir(parents=True)
        for i in range(PER_CLASS):
            draw_shape(cls.split("_")[1], color, i).save(root / cls / f"{cls}_{i}.png")
    return root


@pytest.fixture(scope="session")
def tiny_models(tiny_llava_path, tiny_clip_path):
    """Tiny random LLaVA and two tiny random open_clip CLIPs (different seeds), built once per run."""
    return {"llava": tiny_llava_path, "clip": tiny_clip_path(0), "clip2": tiny_clip_path(1)}
