"""The I/O contract seen from the shell: real processes and real pipes where they matter (pipes, signals,
stdout purity, the environment); option and usage-error checks through the same entry point in-process."""

import gzip
import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from clipdpo_cli.io.records import content_id
from tests.conftest import cli_env, run_cli, run_in_process

STAGES = [
    "caption", "ask", "score", "categorize", "filter", "pair", "export", "ref-logps", "train", "eval-amber",
    "eval-zeroshot",
]  # fmt: skip


def scored(n_images=4, per_image=3):
    out = []
    for i in range(n_images):
        for j in range(per_image):
            out.append(
                {
                    "id": f"{i}-{j}",
                    "image": f"img{i}.jpg",
                    "kind": "caption",
                    "text": f"caption {j} of image {i}",
                    "clip_score": 25.0 + 3 * j + i % 2,
                    "user": [i, j],
                }
            )
    return out


def jsonl(records):
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def parse(stdout):
    return [orjson.loads(line) for line in stdout.splitlines()]


def in_process(args: list[str], input: bytes | None = None) -> subprocess.CompletedProcess:
    """As `run_cli` (bytes out), without a new interpreter: `clipdpo_cli.cli.main` in this process."""
    return run_in_process(*args, stdin=input, text=False)


def test_help_lists_all_stages_and_imports_nothing_heavy():
    r = run_cli(["--help"])
    assert r.returncode == 0
    for stage in STAGES:
        assert f"  {stage} " in r.stdout.decode()
    code = (
        "import sys; from clipdpo_cli.cli import build_app; build_app(); "
        "heavy = [m for m in ('torch', 'open_clip', 'transformers', 'trl', 'PIL', 'numpy')"
        " if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env=cli_env(), check=True)
    assert out.stdout.strip() == b"[]"


@pytest.mark.parametrize("stage", [*STAGES, "models"])
def test_one_command_app_gives_the_same_help_as_the_full_app(stage):
    from typer.testing import CliRunner

    from clipdpo_cli.cli import _named_module, build_app

    module = _named_module([stage])
    assert module == stage.replace("-", "_")
    full = CliRunner().invoke(build_app(), [stage, "--help"], prog_name="clipdpo")
    one = CliRunner().invoke(build_app(module), [stage, "--help"], prog_name="clipdpo")
    assert one.exit_code == full.exit_code == 0
    assert one.output == full.output and f"Usage: clipdpo {stage} " in one.output


def test_only_exact_command_names_get_the_one_command_app():
    from clipdpo_cli.cli import _named_module

    assert [_named_module(a) for a in (["eval_amber"], ["--help"], [], ["nope"])] == [None] * 4


@pytest.mark.parametrize("stage", STAGES)
def test_every_help_starts_with_a_pipeline_example(stage):
    r = in_process([stage, "--help"])
    assert r.returncode == 0, r.stderr
    body = r.stdout.decode().split("\n\n", 1)[1].strip()
    assert "clipdpo " in body.splitlines()[0]


def test_filter_passes_unknown_fields_and_prints_summary():
    r = run_cli(["filter"], input=jsonl(scored()))
    assert r.returncode == 0
    out = parse(r.stdout)
    # clip scores 25, 28, 31 (26, 29, 32 on odd images): the first caption of each image is < 28
    assert [x["id"] for x in out] == [f"{i}-{j}" for i in range(4) for j in (1, 2)]
    assert out[0]["user"] == [0, 1]
    assert r.stderr.decode().startswith("clipdpo filter: 12 in, 8 out; dropped 4 caption score < 28;")


def test_quiet_prints_nothing_on_stderr():
    r = run_cli(["filter", "-q"], input=jsonl(scored()))
    assert r.returncode == 0 and r.stderr == b""


BAD_INPUTS = {
    "malformed JSON": (b'{"id":"a","text":"x","clip_score":30}\n{"id": nope}\n', "line 2: invalid JSON"),
    "not an object": (b"[1, 2]\n", "line 1: not a JSON object (got list)"),
    "missing field": (b'{"id":"a","text":"x"}\n', "field 'clip_score' is missing"),
    "mistyped field": (
        b'{"id":"a","text":"x","clip_score":"high"}\n',
        "field 'clip_score' is not a number (str)",
    ),
    "invalid UTF-8": (b'{"id":"a","text":"\xff\xfe","clip_score":30}\n', "line 1: invalid UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_and_exit_1(case):
    data, expected = BAD_INPUTS[case]
    r = in_process(["filter"], input=data)
    err = r.stderr.decode()
    assert r.returncode == 1
    assert expected in err and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("clipdpo filter: error: ")


def test_skip_mode_counts_bad_lines():
    data = b"".join(v[0] for v in BAD_INPUTS.values()) + jsonl(scored(1, 3))
    r = in_process(["filter", "--on-error", "skip"], input=data)
    assert r.returncode == 0
    assert [x["id"] for x in parse(r.stdout)] == ["a", "0-1", "0-2"]
    err = r.stderr.decode()
    for what in ["1 invalid JSON", "1 invalid UTF-8", "1 not a JSON object", "2 bad field 'clip_score'"]:
        assert what in err


def test_empty_input_warns_and_succeeds():
    r = in_process(["filter"], input=b"")
    assert r.returncode == 0 and r.stdout == b""
    assert "held no records" in r.stderr.decode()


def test_ten_megabyte_line():
    big = {"id": "big", "image": "x.jpg", "text": "word " * 50, "clip_score": 30.0, "blob": "y" * 10_000_000}
    r = run_cli(["filter"], input=orjson.dumps(big) + b"\n")
    assert r.returncode == 0 and parse(r.stdout)[0]["blob"] == big["blob"]


def test_missing_input_file(tmp_path):
    r = in_process(["filter", str(tmp_path / "absent.jsonl")])
    assert r.returncode == 1 and "input file not found" in r.stderr.decode()


def test_gz_input_and_output(tmp_path):
    src = tmp_path / "in.jsonl.gz"
    src.write_bytes(gzip.compress(jsonl(scored())))
    out = tmp_path / "out.jsonl.gz"
    r = run_cli(["filter", str(src), "-o", str(out)])
    assert r.returncode == 0 and r.stdout == b""
    assert len(parse(gzip.decompress(out.read_bytes()))) == 8


def test_head_ends_quietly():
    data = jsonl(scored(3000, 3))
    p = subprocess.run(
        f"{sys.executable} -m clipdpo_cli filter --min-caption-score none | head -1; exit ${{PIPESTATUS[0]}}",
        executable="/bin/bash",
        shell=True,
        input=data,
        capture_output=True,
        env=cli_env(),
    )
    assert len(p.stdout.splitlines()) == 1
    assert p.returncode == 0
    assert b"Traceback" not in p.stderr and b"Error" not in p.stderr


def test_ctrl_c_leaves_only_whole_lines(tmp_path):
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipdpo_cli", "filter", "-o", str(out)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )
    proc.stdin.write(jsonl(scored(2000, 3)))
    proc.stdin.flush()
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted" in err and b"Traceback" not in err
    data = out.read_bytes()
    assert data.endswith(b"\n")
    lines = parse(data)
    assert len(lines) > 0 and all(r["clip_score"] >= 28 for r in lines)


def test_shards_union_equals_whole(tmp_path):
    data = jsonl(scored(50, 3))
    whole = parse(run_cli(["filter"], input=data).stdout)
    parts = [parse(run_cli(["filter", "--shard", f"{k}/3"], input=data).stdout) for k in range(3)]
    assert sorted(r["id"] for p in parts for r in p) == sorted(r["id"] for r in whole)
    assert all(len(p) > 0 for p in parts)
    # every image's records stay in one shard
    owners = {r["image"]: k for k, p in enumerate(parts) for r in p}
    assert all(owners[r["image"]] == k for k, p in enumerate(parts) for r in p)
    # SLURM variables select the same shard
    slurm = parse(run_cli(["filter"], input=data, SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_TASK_COUNT="3").stdout)
    assert slurm == parts[1]


def test_resume_skips_done_and_repairs_half_line(tmp_path):
    data = jsonl(scored(10, 3))
    whole = parse(run_cli(["filter"], input=data).stdout)
    out = tmp_path / "out.jsonl"
    out.write_bytes(jsonl(whole[:4]) + b'{"id":"half-writ')
    r = run_cli(["filter", "-o", str(out), "--resume"], input=data)
    assert r.returncode == 0
    assert parse(out.read_bytes()) == whole
    assert "4 already done (resume)" in r.stderr.decode()


def test_resume_needs_output():
    r = in_process(["filter", "--resume"], input=b"")
    assert r.returncode == 2 and "--resume needs -o FILE" in r.stderr.decode()


def test_rejects_file(tmp_path):
    rej = tmp_path / "rej.jsonl"
    r = run_cli(["filter", "--rejects", str(rej)], input=jsonl(scored()))
    assert r.returncode == 0
    rejected = parse(rej.read_bytes())
    assert [(x["id"], x["reject_reason"]) for x in rejected] == [
        (f"{i}-0", "caption score < 28") for i in range(4)
    ]


def test_where_option_and_bad_where():
    r = in_process(
        ["filter", "--where", "image == img1.jpg", "--where", "clip_score > 29"], input=jsonl(scored())
    )
    assert [x["id"] for x in parse(r.stdout)] == ["1-2"]
    r = in_process(["filter", "--where", "garbage"], input=jsonl(scored()))
    assert r.returncode == 2 and "expected FIELD OP VALUE" in r.stderr.decode()


def test_pair_cli_end_to_end():
    r = run_cli(["pair"], input=jsonl(scored()))
    assert r.returncode == 0, r.stderr
    pairs = parse(r.stdout)
    assert [(p["image"], p["from"]) for p in pairs] == [
        (f"img{i}.jpg", [f"{i}-2", f"{i}-0"]) for i in range(4)
    ]
    assert all(p["margin"] == 6.0 for p in pairs)
    assert "12 in, 4 out" in r.stderr.decode()


def test_pair_ungrouped_input_gives_clear_error():
    recs = scored(2, 2)
    r = in_process(["pair"], input=jsonl([recs[0], recs[2], recs[1], recs[3]]))
    assert r.returncode == 1 and "not grouped by image" in r.stderr.decode()
    r = in_process(["pair", "--input-order", "any"], input=jsonl([recs[0], recs[2], recs[1], recs[3]]))
    assert r.returncode == 0 and len(parse(r.stdout)) == 2


def test_usage_error_exit_2():
    r = in_process(["filter", "--no-such-option"])
    assert r.returncode == 2 and "No such option" in r.stderr.decode()


@pytest.mark.skipif(os.name != "posix", reason="shell pipes")
def test_real_pipe_filter_into_pair(tmp_path):
    src = tmp_path / "scored.jsonl"
    src.write_bytes(jsonl(scored(6, 3)))
    py = sys.executable
    p = subprocess.run(
        f"{py} -m clipdpo_cli filter {src} -q | {py} -m clipdpo_cli pair -q",
        shell=True,
        capture_output=True,
        env=cli_env(),
    )
    assert p.returncode == 0
    pairs = parse(p.stdout)
    # after filtering, each image keeps its captions at +3 and +6 points: one pair of margin 3 > 2
    assert [p["margin"] for p in pairs] == [3.0] * 6


def test_filter_writes_kept_lines_back_unchanged_and_ids_where_missing():
    kept = b'{"id": "a",  "image": "x.jpg", "text": "a dog", "clip_score": 30.10000000000000142}'
    dropped = b'{"id":"b","image":"x.jpg","text":"a cat","clip_score":20}'
    no_id = {"image": "y.jpg", "text": "a \"red\" car", "clip_score": 29}
    data = kept + b"\r\n" + dropped + b"\n\n" + orjson.dumps(no_id)  # CRLF, blank line, no final newline
    r = run_cli(["filter"], input=data)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.split(b"\n")[:2]
    assert first == kept + b"\r"  # byte for byte: spacing, number spelling, line end
    assert orjson.loads(second) == {"id": content_id(no_id), **no_id}
    assert r.stdout.count(b"\n") == 2 and r.stdout.endswith(b"\n")


@pytest.mark.parametrize("stage", ["caption", "ask", "score", "categorize"])
def test_model_stages_check_input_before_loading_a_model(stage, tmp_path):
    # the model does not exist: an input error proves the input was checked first
    missing = str(tmp_path / "absent.jsonl")
    r = in_process([stage, missing, "--model", str(tmp_path / "no-such-model")])
    assert r.returncode == 1 and f"input file not found: {missing}" in r.stderr.decode()
    r = in_process([stage, "--resume", "--model", str(tmp_path / "no-such-model")], input=b"")
    assert r.returncode == 2 and "--resume needs -o FILE" in r.stderr.decode()


def test_score_categorize_checks_prototypes_before_loading_a_model(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl(scored(1, 1)))
    args = [str(src), "--categorize", "--prototypes", str(tmp_path / "p.json"), "-m", str(tmp_path / "m")]
    r = in_process(["score", *args])
    assert r.returncode == 1 and "prototypes file not found" in r.stderr.decode()
