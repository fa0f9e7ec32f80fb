"""Fixtures of the zero-shot tests: fake dataset layouts (built once per session) and a clean environment."""

from __future__ import annotations

import sys

import pytest
from zeroshot_fakes import BUILDERS


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

    from zeroshot_fakes import fake_clip_benchmark

    def install(classnames: dict, templates: dict) -> None:
        entry = fake_clip_benchmark(tmp_path / "site", classnames, templates)
        monkeypatch.setattr(sys, "path", [str(entry), *sys.path])
        importlib.invalidate_caches()

    return install
