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


@pytest.mark.parametrize(
    "args, kept",
    [
        # a command's other input files (commands/options.py SIDE_INPUTS)
        (["caption", "a.jsonl", "-m", "any", "--prompts", "p.txt", "-o", "p.txt"], "p.txt"),
        (["caption", "a.jsonl", "-m", "any", "--chat-template", "t.jinja", "-o", "t.jinja"], "t.jinja"),
        (["categorize", "a.jsonl", "--prototypes", "p.txt", "-o", "p.txt"], "p.txt"),
        (["perturb", "a.jsonl", "--method", "rules", "--objects", "p.txt", "-o", "p.txt"], "p.txt"),
        # eval-pope / eval-chair: every file they read (before: the responses or the benchmark were replaced)
        (["eval-pope", "--pope-root", "pope", "--responses", "a.jsonl", "-o", "a.jsonl"], "a.jsonl"),
        (["eval-pope", "--pope-root", "pope", "--write-queries", "pope/coco_pope_random.json"],
         "pope/coco_pope_random.json"),
        (["eval-chair", "--coco-annotations", "coco/instances_val2014.json", "--responses", "a.jsonl",
          "--details", "a.jsonl"], "a.jsonl"),
        (["eval-chair", "--coco-annotations", "coco/instances_val2014.json",
          "--write-queries", "coco/captions_val2014.json"], "coco/captions_val2014.json"),
    ],
)  # fmt: skip
def test_outputs_onto_side_inputs_and_benchmark_files_are_refused(data, args, kept, monkeypatch):
    monkeypatch.chdir(data)
    (data / "p.txt").write_text("Describe the image.\n")
    (data / "t.jinja").write_text("{{ messages }}")
    (data / "pope").mkdir()
    (data / "pope" / "coco_pope_random.json").write_text('{"question_id": 1}\n')
    (data / "coco").mkdir()
    for name in ("instances_val2014.json", "captions_val2014.json"):
        (data / "coco" / name).write_text('{"images": [], "annotations": []}')
    before = (data / kept).read_bytes()
    result = run_in_process(*args)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "input" in result.stderr, result.stderr
    assert (data / kept).read_bytes() == before  # before: exit 0 and the file replaced


def test_an_output_onto_a_file_of_an_input_folder_is_refused(tmp_path, monkeypatch):
    """An image (or a benchmark file) inside a folder the run reads; other files there are fine."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "amber" / "data" / "query").mkdir(parents=True)
    (tmp_path / "amber" / "data" / "query" / "query_all.json").write_text("[]")
    result = run_in_process("caption", "imgs", "-m", "any", "-o", "imgs/a.png")
    assert result.returncode == 2 and "is a file of the input imgs" in result.stderr, result.stderr
    assert (tmp_path / "imgs" / "a.png").read_bytes() == b"\x89PNG not really"  # before: truncated to 0
    result = run_in_process(
        "eval-amber", "--amber-root", "amber", "--write-queries", "amber/data/query/query_all.json"
    )
    assert result.returncode == 2, result.stderr
    assert "is a file of the input --amber-root amber" in result.stderr
    assert (tmp_path / "amber" / "data" / "query" / "query_all.json").read_text() == "[]"


@pytest.mark.parametrize(
    "target", ["-o /dev/stdout", "-o >(cat > piped.jsonl)", "--rejects >(cat > rej.jsonl)"]
)
def test_an_output_that_is_a_pipe_is_written_without_a_traceback(data, target):
    """Before: every record was written, then `io.UnsupportedOperation: File or stream is not seekable` (the
    writer cut the output back to its last whole line, which a pipe cannot do), exit 1."""
    clipdpo = f"{sys.executable} -m clipdpo_cli"
    script = f"set -o pipefail; {clipdpo} filter a.jsonl --min-caption-score 31.5 {target} | wc -l; sleep 0.3"
    result = subprocess.run(["bash", "-c", script], cwd=data, env=cli_env(), capture_output=True, text=True)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    if target == "-o /dev/stdout":
        assert result.stdout.split()[0] == "2"  # scores 32 and 33 kept
    elif "piped" in target:
        assert len((data / "piped.jsonl").read_text().splitlines()) == 2
    else:
        assert len((data / "rej.jsonl").read_text().splitlines()) == 2
