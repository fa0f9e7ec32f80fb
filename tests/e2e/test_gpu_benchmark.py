"""benchmarks/gpu.py in its tiny CPU mode: the lease script runs the same code paths, so it cannot rot; and
its JSON is rewritten after every section, so what a failing or cut-off section leaves behind is kept."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, cli_env

pytestmark = pytest.mark.slow


def test_gpu_benchmark_tiny_mode_writes_its_json_after_every_section(tmp_path):
    """caption, an unknown section (fails), score, train_lora (a 1 s timeout: killed), train_full: the JSON is
    there, whole, after each; the failures are recorded and the sections after them still run."""
    out = tmp_path / "gpu.json"
    sections = "caption,nosuch,score,train_lora,train_full"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--tiny", "--out", str(out),
         "--sections", sections, "--timeouts", "train_lora=1"],
        stderr=subprocess.PIPE, text=True, env=cli_env(HF_HUB_OFFLINE="1"),
    )  # fmt: skip
    seen = []  # the sections the JSON held, each time it changed while the run went on
    deadline = time.monotonic() + 900
    while proc.poll() is None and time.monotonic() < deadline:
        if out.exists():
            finished = list(json.loads(out.read_text())["sections"])  # never half a file
            if not seen or seen[-1] != finished:
                seen.append(finished)
        time.sleep(0.2)
    stderr = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0, stderr[-2000:]
    order = sections.split(",")
    assert [] in seen and order[:3] in seen  # written at the start and before train_lora / train_full ran
    assert all(state == order[: len(state)] for state in seen)  # sections appear as they finish, in order
    result = json.loads(out.read_text())
    assert result["tiny"] is True and result["device"] == "cpu" and result["torch"]
    status = {name: entry["status"] for name, entry in result["sections"].items()}
    assert status == {"caption": "ok", "nosuch": "failed", "score": "ok", "train_lora": "timeout",
                      "train_full": "ok"}  # fmt: skip
    assert "unknown section 'nosuch'" in result["sections"]["nosuch"]["error"]
    assert result["sections"]["train_lora"]["seconds"] < 30 and "train_lora" not in result
    caption = result["caption"]
    assert set(caption["stage"]) == {"2", "4"} and caption["loop_captions_per_s"] > 0
    assert caption["prompt_tokens"] > 576  # the real LLaVA-1.5 processor: 576 image tokens + the prompt
    for entry in caption["stage"].values():
        assert entry["captions_per_s"] > 0
        assert entry["x_loop"] == pytest.approx(entry["captions_per_s"] / caption["loop_captions_per_s"])
    score = result["score"]["tiny"]
    assert score["images_per_s"] > 0 and score["texts_per_s"] > 0 and score["text_context"] == 77
    train = result["train_full"]
    for name in ("full_1b_live_reference", "full_1b_precomputed_reference"):
        assert train[name]["steps"] == 3 and train[name]["median_step_s"] > 0
        assert train[name]["pairs_per_s"] == pytest.approx(2 / train[name]["median_step_s"])
    assert train["precomputed_x_live_steps"] == pytest.approx(
        train["full_1b_precomputed_reference"]["steps_per_s"] / train["full_1b_live_reference"]["steps_per_s"]
    )
    assert "caption batch 4:" in stderr and "section train_lora timeout" in stderr and "figures in" in stderr
