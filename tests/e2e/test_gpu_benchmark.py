"""benchmarks/gpu.py in its tiny CPU mode: the lease script runs the same code paths, so it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, cli_env

pytestmark = pytest.mark.slow


def test_gpu_benchmark_tiny_mode_writes_every_figure(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--tiny", "--out", str(out)],
        capture_output=True, text=True, env=cli_env(HF_HUB_OFFLINE="1"), timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["tiny"] is True and result["device"] == "cpu"
    caption = result["caption"]
    assert set(caption["stage"]) == {"2", "4"} and caption["loop_captions_per_s"] > 0
    assert caption["prompt_tokens"] > 576  # the real LLaVA-1.5 processor: 576 image tokens + the prompt
    for entry in caption["stage"].values():
        assert entry["captions_per_s"] > 0
        assert entry["x_loop"] == pytest.approx(entry["captions_per_s"] / caption["loop_captions_per_s"])
    score = result["score"]["tiny"]
    assert score["images_per_s"] > 0 and score["texts_per_s"] > 0 and score["text_context"] == 77
    train = result["train"]
    for name in ("lora_7b", "full_1b_live_reference", "full_1b_precomputed_reference"):
        assert train[name]["steps"] == 3 and train[name]["median_step_s"] > 0
        assert train[name]["pairs_per_s"] == pytest.approx(2 / train[name]["median_step_s"])
    assert train["precomputed_x_live_steps"] == pytest.approx(
        train["full_1b_precomputed_reference"]["steps_per_s"] / train["full_1b_live_reference"]["steps_per_s"]
    )
    assert "caption batch 4:" in proc.stderr and "figures in" in proc.stderr
