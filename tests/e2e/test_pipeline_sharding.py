"""examples/pipeline.sh's GPU fan-out, with a stand-in `clipdpo` that logs its arguments and writes one line
per shard: one process per GPU for every model pass, `--shard K/N` each, shards merged in shard order, a
missing shard refused, and the GPU count from NGPUS, CUDA_VISIBLE_DEVICES or nvidia-smi. (The real commands
run sharded on tiny models in test_e2e_scripts.py.)"""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from tests.conftest import REPO

FAKE_CLIPDPO = """#!/bin/bash
# stand-in: log the call; write '{"id": "COMMAND K/N"}' to -o / -r (or stdout), except for $FAKE_SKIP
printf '%s\\n' "$*" >> "$FAKE_LOG"
command=$1 out="" shard=""
while [ $# -gt 0 ]; do
  case $1 in -o|-r) out=$2; shift ;; --shard) shard=$2; shift ;; esac
  shift
done
[ ! -p /dev/stdin ] || cat > /dev/null
[ "$command $shard" != "${FAKE_SKIP:-}" ] || exit 0
line="{\\"id\\": \\"$command $shard\\"}"
if [ -n "$out" ]; then echo "$line" >> "$out"; else echo "$line"; fi
"""
NVIDIA_SMI = """#!/bin/bash
printf 'GPU 0: NVIDIA H100 (UUID: a)\\nGPU 1: NVIDIA H100 (UUID: b)\\nGPU 2: NVIDIA H100 (UUID: c)\\n'
"""


def executable(path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_bin(tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()
    executable(folder / "clipdpo", FAKE_CLIPDPO)
    return folder


def pipeline(fake_bin, tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("NGPUS", "CUDA_VISIBLE_DEVICES")}
    full = {**base, "PATH": f"{fake_bin}{os.pathsep}/usr/bin{os.pathsep}/bin", "IMAGES": str(tmp_path),
            "OUT": str(tmp_path / "run"), "FAKE_LOG": str(tmp_path / "calls.log"), **env}  # fmt: skip
    return subprocess.run(["bash", str(REPO / "examples/pipeline.sh")], capture_output=True, text=True,
                          env=full, timeout=120)  # fmt: skip


def calls(tmp_path) -> list[str]:
    return (tmp_path / "calls.log").read_text().splitlines()


def test_every_model_pass_runs_one_shard_per_gpu_and_merges_in_order(fake_bin, tmp_path):
    r = pipeline(fake_bin, tmp_path, NGPUS="3")
    assert r.returncode == 0, r.stderr
    log = calls(tmp_path)
    passes = [("caption", "captions.jsonl"), ("ask", "questions.jsonl"), ("score", "scored-captions.jsonl"),
              ("score", "scored-questions.jsonl")]  # fmt: skip
    for command, output in passes:
        out = tmp_path / "run" / output
        shards = [f"{out}.shards/{k}-of-3.jsonl" for k in range(3)]
        runs = [c for c in log if c.startswith(command) and any(f"-o {s}" in c for s in shards)]
        # one process per GPU (side by side: any start order), shard K writing its own file; --device left
        # at auto (GPU K mod 3)
        assert sorted(c.split("--shard ")[1].split()[0] for c in runs) == ["0/3", "1/3", "2/3"]
        assert all(f"--shard {k}/3" in c for c in runs for k in range(3) if f"{k}-of-3.jsonl" in c)
        assert not any("--device" in c for c in runs)
        assert out.read_text().splitlines() == [f'{{"id": "{command} {k}/3"}}' for k in range(3)]
    # the answer score reads the question score's stream with the same --shard K/N: the same GPU
    piped = [c for c in log if c.startswith("score --model")]
    assert sorted(c.split("--shard ")[1].split()[0] for c in piped) == ["0/3", "1/3", "2/3"]
    assert "--num-processes 3" in next(c for c in log if c.startswith("train"))
    assert (tmp_path / "run" / "ask-rejects.jsonl").read_text() == ""
    # a rerun keeps the finished passes
    r = pipeline(fake_bin, tmp_path, NGPUS="3")
    assert r.returncode == 0 and "captions.jsonl exists, caption_pass skipped" in r.stderr


def test_a_missing_shard_is_refused(fake_bin, tmp_path):
    r = pipeline(fake_bin, tmp_path, NGPUS="2", FAKE_SKIP="caption 1/2")
    assert r.returncode == 1
    out = tmp_path / "run" / "captions.jsonl"
    assert f"cannot merge {out}: shard 1/2 ({out}.shards/1-of-2.jsonl) is missing" in r.stderr
    assert not out.exists() and not (tmp_path / "run" / "captions.jsonl.partial").exists()
    assert not any(c.startswith("ask") for c in calls(tmp_path))  # nothing ran on a partial merge


@pytest.mark.parametrize(
    "env, smi, count",
    [({"CUDA_VISIBLE_DEVICES": "3,5"}, True, 2), ({}, True, 3), ({}, False, 1),
     ({"NGPUS": "4", "CUDA_VISIBLE_DEVICES": "0"}, True, 4)],
)  # fmt: skip
def test_the_gpu_count(fake_bin, tmp_path, env, smi, count):
    if smi:
        executable(fake_bin / "nvidia-smi", NVIDIA_SMI)
    r = pipeline(fake_bin, tmp_path, **env)
    assert r.returncode == 0, r.stderr
    assert f"pipeline.sh: {count} GPU process(es) per model pass" in r.stderr
    captions = [c for c in calls(tmp_path) if c.startswith("caption")]
    assert len(captions) == count and all(f"/{count} " in c for c in captions)
