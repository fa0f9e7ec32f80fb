"""An output that is an input under any name (the path, a symlink, a hard link, a redirected stdin/stdout) is
a usage error before anything is opened for writing (io/outputs.py): before, `filter a.jsonl -o a.jsonl`
emptied a.jsonl and exited 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import cli_env, run_in_process

LINES = "".join(
    json.dumps({"id": f"r{i}", "image": "x.jpg", "text": "a cat", "caption": "a cat", "clip_score": 30.0 + i})
    + "\n"
    for i in range(4)
)


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(LINES)
    os.symlink(path, tmp_path / "link.jsonl")
    os.link(path, tmp_path / "hard.jsonl")
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ["filter", "a.jsonl", "-o", "a.jsonl"],
        ["filter", "a.jsonl", "-o", "link.jsonl"],
        ["filter", "link.jsonl", "-o", "hard.jsonl"],
        ["filter", "a.jsonl", "-o", "out.jsonl", "--rejects", "hard.jsonl"],
        ["pair", "a.jsonl", "-o", "a.jsonl"],
        ["export", "a.jsonl", "-o", "a.jsonl"],
        ["perturb", "a.jsonl", "-o", "./a.jsonl", "--method", "rules"],
        ["categorize", "a.jsonl", "-o", "a.jsonl"],
        ["score", "a.jsonl", "-o", "a.jsonl"],
        ["report", "--scored", "a.jsonl", "-o", "a.jsonl"],
        ["report", "--pairs", "link.jsonl", "-o", "hard.jsonl"],
        ["probe", "a.jsonl", "-o", "a.jsonl"],
        ["eval-amber", "--responses", "a.jsonl", "-o", "link.jsonl", "--amber-root", "nowhere"],
        ["eval-zeroshot", "a.jsonl", "-o", "hard.jsonl"],
    ],
)
def test_output_onto_an_input_is_refused_and_the_input_kept(data, args, monkeypatch):
    monkeypatch.chdir(data)
    result = run_in_process(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is the input" in lines[0] and "itself" in lines[0], result.stderr
    assert (data / "a.jsonl").read_text() == LINES  # before: 0 bytes (or the report's HTML)
    assert not (data / "out.jsonl").exists()


def test_two_outputs_on_one_file_are_refused(data, monkeypatch):
    monkeypatch.chdir(data)
    result = run_in_process("filter", "a.jsonl", "-o", "new.jsonl", "--rejects", "./new.jsonl")
    assert result.returncode == 2
    assert "--rejects ./new.jsonl and -o new.jsonl are the same file" in result.stderr
    assert not (data / "new.jsonl").exists()


def test_export_dataset_info_onto_the_input_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dataset_info.json").write_text(LINES)
    result = run_in_process("export", "dataset_info.json", "--format", "llamafactory", "-o", "pairs.jsonl")
    assert result.returncode == 2 and "dataset_info.json" in result.stderr and "is the input" in result.stderr
    assert (tmp_path / "dataset_info.json").read_text() == LINES
    assert not (tmp_path / "pairs.jsonl").exists()


def test_redirected_stdin_and_stdout_count(data):
    """`filter < a.jsonl -o a.jsonl` and `filter a.jsonl >> a.jsonl` (GNU cat refuses the same); a terminal,
    /dev/null or a pipe is never refused."""
    run = [sys.executable, "-m", "clipdpo_cli", "filter", "--min-caption-score", "none"]
    with open(data / "a.jsonl", "rb") as stdin:
        result = subprocess.run([*run, "-o", "hard.jsonl"], stdin=stdin, capture_output=True, env=cli_env(),
                                cwd=data)  # fmt: skip
    assert result.returncode == 2 and b"-o hard.jsonl is the input stdin itself" in result.stderr
    with open(data / "a.jsonl", "ab") as stdout:
        result = subprocess.run([*run, str(data / "a.jsonl")], stdout=stdout, stderr=subprocess.PIPE,
                                env=cli_env())  # fmt: skip
    assert result.returncode == 2 and b"stdout is the input" in result.stderr
    assert (data / "a.jsonl").read_text() == LINES
    result = subprocess.run([*run, str(data / "a.jsonl"), "-o", os.devnull], capture_output=True,
                            env=cli_env())  # fmt: skip
    assert result.returncode == 0, result.stderr
    result = subprocess.run(run, input=LINES.encode(), capture_output=True, env=cli_env())
    assert result.returncode == 0 and result.stdout.decode() == LINES


def test_filter_given_a_tar_says_it_reads_json_lines(tmp_path, monkeypatch):
    """Before: "pass --image-dir DIR" first, and only with --image-dir the real reason."""
    import tarfile

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.jsonl").write_text(LINES)
    with tarfile.open(tmp_path / "shard.tar", "w") as tar:
        tar.add(tmp_path / "a.jsonl", arcname="0001.json")
    result = run_in_process("filter", "shard.tar")
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "error: filter reads JSON lines; shard.tar is a tar archive (webdataset): turn it into records "
        "first (caption, score and the other stages read it directly)"
    ), result.stderr
