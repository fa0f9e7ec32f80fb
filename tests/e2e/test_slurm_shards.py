"""The SLURM array recipes' shard files (examples/slurm/): every shard is written under a temporary name
and renamed when complete, and merge.sh merges only a complete set. Fake shards and a fake `clipdpo` for
the array tasks (no model runs); merge.sh runs the real filter | pair on examples/data/scored-sample.jsonl."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import orjson
import pytest

from tests.conftest import REPO, cli_env, run_cli

# A stand-in for `clipdpo caption` / `clipdpo score`: writes two records to its -o file, then either exits
# (FAKE=ok) or dies half-way as a killed task does (FAKE=die); each call is logged.
FAKE_CLIPDPO = """#!/bin/bash
echo "$*" >> "$FAKE_LOG"
out=""
while [ $# -gt 0 ]; do
  if [ "$1" = "-o" ]; then out=$2; fi
  shift
done
echo '{"id": "a"}' >> "$out"
[ "$FAKE" = die ] && exit 137
echo '{"id": "b"}' >> "$out"
"""


@pytest.fixture
def fake_env(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "clipdpo"
    fake.write_text(FAKE_CLIPDPO)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = cli_env(FAKE_LOG=str(tmp_path / "calls.log"), SLURM_ARRAY_TASK_COUNT="4", SLURM_ARRAY_TASK_MIN="0")
    env["PATH"] = os.pathsep.join([str(bin_dir), env["PATH"]])
    return env


def bash(script: str, env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(REPO / script), *args], capture_output=True, text=True, env={**env, **extra}, timeout=300
    )


def calls(env) -> list[str]:
    path = env["FAKE_LOG"]
    return open(path).read().splitlines() if os.path.exists(path) else []


@pytest.mark.parametrize(
    "script, args, shard",
    [
        ("examples/slurm/caption.sbatch", ("IMAGES",), "captions.2.jsonl"),
        ("examples/slurm/score.sbatch", (), "scored.2.jsonl"),
    ],
)
def test_a_killed_task_leaves_no_shard_that_looks_finished(script, args, shard, fake_env, tmp_path):
    out = tmp_path / "run"
    (out / "shards").mkdir(parents=True)
    if "score" in script:  # its input: the caption task's finished shard
        (out / "shards" / "captions.2.jsonl").write_text('{"id": "a"}\n')
    final, partial = out / "shards" / shard, out / "shards" / f"{shard}.partial"
    killed = bash(script, fake_env, *args, str(out), SLURM_ARRAY_TASK_ID="2", FAKE="die")
    assert killed.returncode == 137
    assert not final.exists() and partial.read_text() == '{"id": "a"}\n'
    # the requeued task continues the .partial file (--resume), then renames it
    done = bash(script, fake_env, *args, str(out), SLURM_ARRAY_TASK_ID="2", FAKE="ok")
    assert done.returncode == 0, done.stderr
    assert not partial.exists() and final.read_text() == '{"id": "a"}\n{"id": "a"}\n{"id": "b"}\n'
    assert [c.split(" -o ")[1] for c in calls(fake_env)] == [f"{partial} --resume"] * 2
    # a finished shard is not redone
    again = bash(script, fake_env, *args, str(out), SLURM_ARRAY_TASK_ID="2", FAKE="ok")
    assert again.returncode == 0 and len(calls(fake_env)) == 2
    if "caption" in script:
        assert (out / "shards" / "array").read_text() == "4 0 1\n"


def scored_shards(out, n: int = 3) -> list[list[bytes]]:
    """examples/data/scored-sample.jsonl split into n shards by image, as `clipdpo score --shard` would."""
    from clipdpo_cli.io.shard import Shard

    lines = (REPO / "examples" / "data" / "scored-sample.jsonl").read_bytes().splitlines(keepends=True)
    shards: list[list[bytes]] = [[] for _ in range(n)]
    for line in lines:
        image = orjson.loads(line)["image"]
        shards[next(k for k in range(n) if Shard(k, n).owns(image))].append(line)
    (out / "shards").mkdir(parents=True)
    for k, shard in enumerate(shards):
        (out / "shards" / f"scored.{k}.jsonl").write_bytes(b"".join(shard))
    return shards


@pytest.fixture
def merge_env():
    env = cli_env()
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env["PATH"]])
    return env


def test_merge_refuses_an_incomplete_set_naming_the_missing_shards(merge_env, tmp_path):
    """The issue's case: one of four scored shards missing used to exit 0 with '7 pairs'."""
    out = tmp_path / "run"
    shards = scored_shards(out)
    assert all(shards)  # every shard holds records (12 images: 6, 4, 2): losing one loses images
    (out / "shards" / "array").write_text("3 0\n")
    os.remove(out / "shards" / "scored.1.jsonl")
    (out / "shards" / "scored.2.jsonl").rename(out / "shards" / "scored.2.jsonl.partial")
    r = bash("examples/slurm/merge.sh", merge_env, str(out))
    assert r.returncode == 1 and r.stdout == ""
    s = out / "shards"
    assert r.stderr == (
        f"merge.sh: 2 of 3 scored shards missing: {s}/scored.1.jsonl, {s}/scored.2.jsonl (unfinished: "
        f"{s}/scored.2.jsonl.partial); rerun those array tasks (sbatch --array=K examples/slurm/score.sbatch "
        f"{out}), then merge again\n"
    )
    assert sorted(os.listdir(out)) == ["shards"]  # nothing written


def test_merge_needs_the_array_size_and_refuses_shards_outside_it(merge_env, tmp_path):
    out = tmp_path / "run"
    scored_shards(out)
    r = bash("examples/slurm/merge.sh", merge_env, str(out))
    assert r.returncode == 1 and r.stderr == (
        f"merge.sh: {out}/shards/array not found (written by caption.sbatch): give the array size, "
        f"e.g. merge.sh {out} 8\n"
    )
    r = bash("examples/slurm/merge.sh", merge_env, str(out), "2")  # shard 2 is an earlier, larger array's
    assert r.returncode == 1 and r.stderr == (
        f"merge.sh: {out}/shards/scored.2.jsonl is not a shard of the array of 2 tasks from 0 (step 1): "
        "remove it or give the array size\n"
    )
    assert sorted(os.listdir(out)) == ["shards"]


def test_merge_of_a_complete_set_is_the_unsharded_result(merge_env, tmp_path):
    out = tmp_path / "run"
    shards = scored_shards(out)
    (out / "shards" / "array").write_text("3 0\n")
    r = bash("examples/slurm/merge.sh", merge_env, str(out))
    assert r.returncode == 0, r.stderr
    merged = (out / "scored.jsonl").read_bytes()
    assert merged == b"".join(line for shard in shards for line in shard)
    sample = str(REPO / "examples" / "data" / "scored-sample.jsonl")
    kept = run_cli(["filter", sample, "-q"])
    direct = run_cli(["pair", "-q"], input=kept.stdout)
    assert direct.returncode == 0, direct.stderr
    pairs = [orjson.loads(line) for line in (out / "pairs.jsonl").read_bytes().splitlines()]
    want = [orjson.loads(line) for line in direct.stdout.splitlines()]
    assert pairs and sorted(p["id"] for p in pairs) == sorted(p["id"] for p in want)
    assert r.stderr.endswith(f"{len(want)} pairs in {out}/pairs.jsonl (from 3 scored shards)\n")


@pytest.mark.parametrize("array, names", [("3\n", (0, 1, 2)), ("3 10 5\n", (10, 15, 20))])
def test_merge_reads_an_array_file_of_the_count_alone_or_with_a_step(merge_env, tmp_path, array, names):
    """`3` alone (before: "bad array size '3' (first task '')") and a stepped array (--array=10-20:5, which
    io/shard.py shards by (id - min) / step; before: its shards were "missing")."""
    out = tmp_path / "run"
    shards = scored_shards(out)
    for k, name in enumerate(names):
        if k != name:
            (out / "shards" / f"scored.{k}.jsonl").rename(out / "shards" / f"scored.{name}.jsonl")
    (out / "shards" / "array").write_text(array)
    r = bash("examples/slurm/merge.sh", merge_env, str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "scored.jsonl").read_bytes() == b"".join(line for shard in shards for line in shard)
