"""Inputs read once (io/streams.py): a pipe path (`<(zcat a.jsonl.gz)`, /dev/stdin on a pipe) or a named FIFO
gives every record (before: "0 in, 0 out", exit 0; a FIFO hung). And the caps of --max-record-size: a JSON
line or an archive member over it is a bad record, read past without being held in memory (before: a
MemoryError traceback, even under --on-error skip)."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import tracemalloc

import pytest

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.jsonl import read_batches
from tests.conftest import cli_env, run_in_process
from tests.input_files import webdataset_tar

RECORDS = [{"id": f"r{i}", "image": "x.jpg", "text": "a red cat", "kind": "caption", "clip_score": 30.0 + i}
           for i in range(5)]  # fmt: skip
LINES = "".join(json.dumps(r) + "\n" for r in RECORDS)
PAIR = {"id": "p", "image": "x.jpg", "prompt": "Describe.", "chosen": "a red cat", "rejected": "a blue cat"}


def pipe_with(data: bytes) -> tuple[str, int]:
    """A real pipe (as bash's `<(...)` gives one) fed by a thread: (its /dev/fd path, its read end)."""
    read_end, write_end = os.pipe()

    def feed() -> None:
        with os.fdopen(write_end, "wb") as fh:
            fh.write(data)

    threading.Thread(target=feed, daemon=True).start()
    return f"/dev/fd/{read_end}", read_end


@pytest.fixture
def pipe():
    opened = []

    def make(data: bytes) -> str:
        path, fd = pipe_with(data)
        opened.append(fd)
        return path

    yield make
    for fd in opened:
        os.close(fd)


def lines_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("compressed", [False, True])
def test_filter_reads_a_pipe_once(pipe, compressed):
    data = gzip.compress(LINES.encode()) if compressed else LINES.encode()
    result = run_in_process("filter", pipe(data), "--min-caption-score", "32")
    assert result.returncode == 0, result.stderr
    assert [r["id"] for r in lines_of(result.stdout)] == ["r2", "r3", "r4"]  # before: none, "0 in, 0 out"
    assert "5 in, 3 out" in result.stderr


def test_pair_export_and_perturb_read_pipes(pipe, tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"")  # export checks that the image exists
    distinct = "".join(json.dumps({**r, "text": f"a red cat {i}"}) + "\n" for i, r in enumerate(RECORDS))
    result = run_in_process("pair", pipe(distinct.encode()), "--min-margin", "3.5")
    assert result.returncode == 0, result.stderr
    (pair,) = lines_of(result.stdout)
    assert (pair["chosen"], pair["rejected"]) == ("a red cat 4", "a red cat 0")
    assert "5 in, 1 out" in result.stderr
    result = run_in_process("export", pipe(json.dumps(PAIR).encode()), "--image-root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert lines_of(result.stdout)[0]["images"] == [str(tmp_path / "x.jpg")]
    array = json.dumps(RECORDS).encode()  # a JSON array through a pipe: sniffed, then read whole
    result = run_in_process("perturb", pipe(array), "--method", "rules", "--types", "attribute")
    assert result.returncode == 0, result.stderr
    assert [r["from"] for r in lines_of(result.stdout)][::2] == [r["id"] for r in RECORDS]


def test_webdataset_tar_through_a_pipe_reads_as_the_file(pipe, tmp_path):
    tar = webdataset_tar(tmp_path)
    args = ["--text-column", "txt", "--method", "rules", "--types", "attribute", "--seed", "0"]
    from_file = run_in_process("perturb", str(tar), "--image-dir", str(tmp_path / "a"), *args)
    from_pipe = run_in_process("perturb", pipe(gzip.compress(tar.read_bytes())), "--image-dir",
                               str(tmp_path / "b"), *args)  # fmt: skip
    assert from_pipe.returncode == 0, from_pipe.stderr

    def originals(text: str) -> list[tuple[str, str]]:  # the variants' words are seeded by the record id
        kept = [r for r in lines_of(text) if r["hallucination"] == "none"]
        return [(r["text"], os.path.basename(r["image"])) for r in kept]

    assert originals(from_pipe.stdout) == originals(from_file.stdout)
    assert len(originals(from_file.stdout)) == 3 and "3 in, 6 out" in from_pipe.stderr


def test_process_substitution_dev_stdin_and_a_fifo_in_a_real_shell(tmp_path):
    """The issue's own commands, in bash; a FIFO whose writer comes later (before: it hung forever)."""
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(LINES.encode()))
    os.mkfifo(tmp_path / "fifo")
    clipdpo = f"{sys.executable} -m clipdpo_cli filter --min-caption-score 33"
    script = (
        f"set -e; {clipdpo} <(zcat a.jsonl.gz) -o one.jsonl;"
        f" zcat a.jsonl.gz | {clipdpo} /dev/stdin -o two.jsonl;"
        f" (sleep 1; zcat a.jsonl.gz > fifo) & {clipdpo} fifo -o three.jsonl; wait"
    )
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            env=cli_env(), timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in ("one", "two", "three"):
        assert [r["id"] for r in lines_of((tmp_path / f"{name}.jsonl").read_text())] == ["r3", "r4"], name
    assert result.stderr.count("5 in, 2 out") == 3


def test_a_pipe_cannot_carry_what_needs_a_file(pipe):
    result = run_in_process("perturb", pipe(LINES.encode()), "--input-format", "parquet", "--method", "rules")
    assert result.returncode == 1 and "is a pipe: a parquet file is read from a file; save it to one" in (
        result.stderr
    )


# --- --max-record-size ----------------------------------------------------------------------------------


def test_read_batches_skips_a_line_over_the_cap_and_keeps_the_numbering():
    long = b'{"id": "big", "text": "' + b"x" * 5000 + b'"}'
    data = b"\n".join([b'{"id": 1}', long, b'{"id": 2}', long, long + long, b'{"id": 3}']) + b"\n"
    seen = []
    for size in (7, 64, 1 << 16):  # lines gathered across reads, and lines within one read
        bad: list[int] = []
        batches = read_batches(io.BytesIO(data), size=size, max_line=1000,
                               on_bad_line=lambda n, reason, msg, bad=bad: bad.append(n))  # fmt: skip
        kept = [(b.first_lineno + i, line) for b in batches for i, line in enumerate(b.lines) if line]
        seen.append((bad, kept))
    expected = ([2, 4, 5], [(1, b'{"id": 1}'), (3, b'{"id": 2}'), (6, b'{"id": 3}')])
    assert seen == [expected] * 3
    with pytest.raises(InputError, match=r"^input: line 2: a line longer than 1,000 bytes$"):
        list(read_batches(io.BytesIO(data), max_line=1000))


class _Endless(io.RawIOBase):
    """A line of `total` bytes, no newline until its end, then a record: what a gzip bomb inflates to."""

    def __init__(self, total: int) -> None:
        self.left = total

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.left <= 0:
            tail = b'\n{"id": "after"}\n'
            if self.left == 0:
                buffer[: len(tail)] = tail
                self.left = -1
                return len(tail)
            return 0
        n = min(len(buffer), self.left)
        buffer[:n] = b"x" * n
        self.left -= n
        return n


def test_a_huge_line_is_read_past_in_bounded_memory():
    bad: list[int] = []
    tracemalloc.start()
    try:
        batches = read_batches(io.BufferedReader(_Endless(64 << 20)), max_line=1 << 20,
                               on_bad_line=lambda n, reason, msg: bad.append(n))  # fmt: skip
        kept = [line for b in batches for line in b.lines if line]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert bad == [1] and kept == [b'{"id": "after"}']
    assert peak < 4 << 20, peak  # a 64 MiB line, never more than the 1 MiB cap and a block held


def test_a_jsonl_gz_bomb_is_a_bad_line(tmp_path):
    bomb = tmp_path / "bomb.jsonl.gz"
    with gzip.open(bomb, "wb") as fh:
        fh.write(LINES.encode()[:-1] + b"\n" + b'{"id": "bomb", "text": "' + b"a" * (4 << 20) + b'"}\n')
        fh.write(json.dumps({**RECORDS[0], "id": "last"}).encode() + b"\n")
    assert bomb.stat().st_size < 50_000
    fail = run_in_process("filter", str(bomb), "--max-record-size", "64K", "--min-caption-score", "none")
    assert fail.returncode == 1
    assert fail.stderr.strip().splitlines() == [
        f"clipdpo filter: error: {bomb}: line 6: line over --max-record-size (65,536 bytes) "
        "(use --on-error skip to skip such lines)"
    ]
    skip = run_in_process("filter", str(bomb), "--max-record-size", "64K", "--on-error", "skip",
                          "--min-caption-score", "none")  # fmt: skip
    assert skip.returncode == 0, skip.stderr
    assert [r["id"] for r in lines_of(skip.stdout)] == ["r0", "r1", "r2", "r3", "r4", "last"]
    assert "6 in, 6 out; skipped bad 1 line over --max-record-size;" in skip.stderr
    bad = run_in_process("filter", str(bomb), "--max-record-size", "lots")
    assert bad.returncode == 2 and "'lots' is not a size" in bad.stderr


def _tar_with_big_member(path, size: int) -> None:
    """A .tar.gz of two samples, the first with a `size`-byte image member of zeros (compresses to little)."""
    with tarfile.open(path, "w:gz") as tar:
        for key, data in (("big", bytes(size)), ("small", b"\x89PNG tiny")):
            for ext, payload in (("png", data), ("json", json.dumps({"text": key}).encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def test_an_archive_member_over_the_cap_is_never_read_into_memory(tmp_path):
    from clipdpo_cli.io.sources.webdataset import _tar_members

    path = tmp_path / "bomb.tar.gz"
    _tar_with_big_member(path, 32 << 20)
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    try:
        members = [(m["fname"], m["data"]) for m in _tar_members([str(path)], 1 << 20) if m]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(name, len(data) if isinstance(data, bytes) else int(data)) for name, data in members] == [
        ("big.png", 32 << 20), ("big.json", 15), ("small.png", 9), ("small.json", 17)
    ]
    assert not isinstance(members[0][1], bytes)  # its size only
    assert peak < 4 << 20, peak


def test_an_archive_member_over_the_cap_is_a_bad_record(tmp_path):
    path = tmp_path / "shard.tar.gz"
    _tar_with_big_member(path, 300_000)
    args = ["perturb", str(path), "--input-format", "webdataset", "--extract-images-to",
            str(tmp_path / "img"), "--text-column", "text", "--max-record-size", "100K",
            "--method", "rules"]  # fmt: skip
    fail = run_in_process(*args)
    assert fail.returncode == 1
    assert fail.stderr.strip().splitlines() == [
        "clipdpo perturb: error: shard.tar.gz: sample big: member big.png is 300,000 bytes, over "
        "--max-record-size 102,400 (use --on-error skip to skip such records)"
    ]
    skip = run_in_process(*args, "--on-error", "skip")
    assert skip.returncode == 0 and skip.stdout == ""  # the small sample's image is no real image either
    assert "1 in, 0 out; skipped bad 1 archive member over --max-record-size, 1 corrupt image;" in skip.stderr
