"""A `score` killed mid-run (kill -9): its image-decoding workers leave no traceback in the terminal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import cli_env

pytestmark = pytest.mark.slow


def test_killed_score_leaves_no_worker_traceback(tiny_clip_name, tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    with open(tmp_path / "in.jsonl", "w") as fh:
        for i in range(2000):
            path = tmp_path / f"img{i % 200}.jpg"
            if i < 200:
                Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(path)
            fh.write(json.dumps({"id": f"r{i}", "image": str(path), "text": "a photo"}) + "\n")
    out, err = tmp_path / "out.jsonl", tmp_path / "err.txt"
    with open(err, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clipdpo_cli", "score", str(tmp_path / "in.jsonl"), "--model",
             tiny_clip_name, "--workers", "4", "--batch-size", "4", "-o", str(out)],
            stderr=stderr, env=cli_env(HF_HUB_OFFLINE="1"), start_new_session=True,
        )  # fmt: skip
        deadline = time.time() + 120
        while time.time() < deadline and (not out.exists() or out.stat().st_size < 20_000):
            time.sleep(0.2)
        assert proc.poll() is None, "score ended before it could be killed"
        proc.kill()  # the main process only, as kill -9 PID does; the workers notice on their own
        proc.wait()
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)  # a worker of the session is still alive
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Traceback" not in err.read_text(), err.read_text()[-3000:]
