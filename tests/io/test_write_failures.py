"""Bad compressed input, a full disk, a file-size limit and a closed stdout: one line, whole lines kept."""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys

import pytest

from clipdpo_cli.io.errors import InputError
from tests.conftest import cli_env, run_text_cli

RECORD = {"kind": "caption", "image": "i.png", "text": "a red ball on a table " * 3, "clip_score": 30.0}


@pytest.fixture
def scored_gz(tmp_path):
    path = tmp_path / "scored.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        for i in range(5000):
            fh.write(json.dumps({"id": f"c{i}", **RECORD, "image": f"i{i % 50}.png"}) + "\n")
    return path


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_truncated_and_fake_gz_are_one_line_naming_the_file(scored_gz, tmp_path):
    data = scored_gz.read_bytes()
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "plain.jsonl.gz").write_text(json.dumps({"id": "x", **RECORD}) + "\n")
    cut = run_text_cli("filter", str(tmp_path / "cut.jsonl.gz"), "-o", str(tmp_path / "o.jsonl"))
    assert cut.returncode == 1  # was "Aborted!" (no file, no line)
    assert one_line(cut.stderr).startswith("clipdpo filter: error: ")
    assert "cut.jsonl.gz: read error after line " in cut.stderr and "end-of-stream marker" in cut.stderr
    for line in (tmp_path / "o.jsonl").read_text().splitlines():
        json.loads(line)  # what was written before the error is whole lines
    fake = run_text_cli("filter", str(tmp_path / "plain.jsonl.gz"))
    assert fake.returncode == 1  # was a BadGzipFile traceback
    assert "plain.jsonl.gz: read error after line 0: Not a gzipped file" in one_line(fake.stderr)


def test_stdout_to_a_full_device_is_one_line(scored_gz):
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "clipdpo_cli", "filter", str(scored_gz)], stdout=full,
                              stderr=subprocess.PIPE, text=True, env=cli_env())  # fmt: skip
    assert proc.returncode == 1
    assert one_line(proc.stderr) == "clipdpo filter: error: cannot write the output: No space left on device"


def test_closed_stdout_is_one_line(scored_gz):
    proc = subprocess.run([sys.executable, "-m", "clipdpo_cli", "filter", str(scored_gz)], stdout=None,
                          stderr=subprocess.PIPE, text=True, env=cli_env(), close_fds=True,
                          preexec_fn=lambda: os.close(1))  # fmt: skip
    assert proc.returncode == 1  # was AttributeError: 'NoneType' object has no attribute 'buffer'
    message = "clipdpo filter: error: stdout is closed: write the output to a file with -o FILE"
    assert one_line(proc.stderr) == message


def captions_by_image(path) -> None:
    """Pairable captions: 40 images x 4 captions of different scores and similar lengths, grouped."""
    with open(path, "w") as fh:
        for i in range(40):
            for j in range(4):
                text = f"a {'red blue green white'.split()[j]} ball on a wooden table number {i}"
                fh.write(json.dumps({"id": f"c{i}-{j}", "kind": "caption", "image": f"i{i}.png",
                                     "prompt": "Describe.", "text": text, "clip_score": 20.0 + 3 * j}) + "\n")


@pytest.mark.parametrize("stage", ["filter", "pair"])
def test_file_size_limit_leaves_whole_lines(stage, scored_gz, tmp_path):
    """Under `ulimit -f` (and so on a full disk) the output ends at its last whole line."""
    source = scored_gz
    if stage == "pair":
        source = tmp_path / "captions.jsonl"
        captions_by_image(source)
    out = tmp_path / "out.jsonl"
    limit = 6_000
    proc = subprocess.run(
        [sys.executable, "-m", "clipdpo_cli", stage, str(source), "-o", str(out)],
        stderr=subprocess.PIPE, text=True, env=cli_env(),
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )  # fmt: skip
    assert proc.returncode == 1 and "cannot write the output: File too large" in one_line(proc.stderr)
    text = out.read_text()
    assert text and text.endswith("\n") and all(json.loads(line) for line in text.splitlines())


def test_a_run_that_fails_before_its_first_record_leaves_an_existing_output_as_it_was(tmp_path):
    """`-o` onto last run's file, and this run stops before it writes anything (here an unreadable input;
    `respond --yes-no prob` on a server without logprobs did the same): the old file is kept, not emptied."""
    fake = tmp_path / "fake.jsonl.gz"
    fake.write_bytes(b"not gzip at all\n")
    out = tmp_path / "kept.jsonl"
    out.write_text('{"id": "old"}\n')
    proc = subprocess.run([sys.executable, "-m", "clipdpo_cli", "filter", str(fake), "-o", str(out)],
                          stderr=subprocess.PIPE, text=True, env=cli_env())  # fmt: skip
    assert proc.returncode != 0 and "fake.jsonl.gz" in one_line(proc.stderr)
    assert out.read_text() == '{"id": "old"}\n'


def test_the_writer_opens_a_file_at_its_first_record(tmp_path):
    from clipdpo_cli.io.jsonl_out import JsonlWriter

    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "old"}\n')
    with pytest.raises(RuntimeError), JsonlWriter(str(out)):
        raise RuntimeError("stopped before any record")
    assert out.read_text() == '{"id": "old"}\n'
    with JsonlWriter(str(out)):  # no records, no error: an empty output, as before
        pass
    assert out.read_text() == ""
    out.write_text('{"id": "old"}\n')
    with pytest.raises(RuntimeError), JsonlWriter(str(out)) as writer:
        writer.write({"id": "new"})
        raise RuntimeError("stopped after one record")
    assert out.read_text() == '{"id":"new"}\n'  # a started run's output is its own (what --resume reads)
    with pytest.raises(InputError, match="cannot write .*/missing/x.jsonl: No such file or directory"):
        JsonlWriter(str(tmp_path / "missing" / "x.jsonl"))
