"""tests/tiny_models.py: a tiny model is built once per key (sources, versions, arguments), never half."""

from __future__ import annotations

import os

import pytest

from tests.tiny_models import cached_build, sources_key


def counting_builder(calls: list[str], fail: bool = False):
    def build(out_dir: str, seed: int = 0) -> str:
        calls.append(out_dir)
        os.makedirs(out_dir)
        with open(os.path.join(out_dir, "weights.txt"), "w") as fh:
            fh.write(f"seed {seed}")
        if fail:
            raise RuntimeError("interrupted")
        return f"local-dir:{os.path.abspath(out_dir)}"

    return build


def test_built_once_per_arguments_and_named_where_it_lies(tmp_path):
    calls: list[str] = []
    first = cached_build(tmp_path, "tiny", counting_builder(calls), seed=0)
    again = cached_build(tmp_path, "tiny", counting_builder(calls), seed=0)
    other = cached_build(tmp_path, "tiny", counting_builder(calls), seed=1)
    assert len(calls) == 2 and first == again != other
    assert first.startswith("local-dir:") and ".partial" not in first
    with open(os.path.join(first.split(":", 1)[1], "weights.txt")) as fh:
        assert fh.read() == "seed 0"
    assert sources_key(name="tiny", seed=0) != sources_key(name="tiny", seed=1)


def test_an_interrupted_build_is_not_used_and_is_redone(tmp_path):
    calls: list[str] = []
    with pytest.raises(RuntimeError, match="interrupted"):
        cached_build(tmp_path, "tiny", counting_builder(calls, fail=True))
    name = cached_build(tmp_path, "tiny", counting_builder(calls))
    assert len(calls) == 2
    with open(os.path.join(name.split(":", 1)[1], "weights.txt")) as fh:
        assert fh.read() == "seed 0"
