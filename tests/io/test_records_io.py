import gzip

import orjson
import pytest

from clipdpo_cli.io.errors import BadRecord, InputError
from clipdpo_cli.io.jsonl import (
    JsonlWriter,
    LineSource,
    existing_records,
    parse_lines,
    read_jsonl,
    truncate_partial_line,
)
from clipdpo_cli.io.records import content_id, make_id, require
from clipdpo_cli.io.shard import Shard


def collect(*raw, schema=None):
    bad = []
    out = list(parse_lines(iter(raw), lambda n, reason, msg: bad.append((n, reason)), schema))
    return out, bad


def test_make_id_is_stable_and_sensitive():
    assert make_id("a", "b") == make_id("a", "b")
    assert make_id("a", "b") != make_id("ab")
    assert make_id("a", "b") != make_id("b", "a")
    assert len(make_id("x")) == 16 and int(make_id("x"), 16) >= 0


def test_missing_id_gets_content_hash_first_and_key_order_free():
    out, bad = collect(b'{"b":1,"a":2}\n', b'{"a":2,"b":1}\n', b'{"id":"given","a":1}\n')
    assert not bad
    assert out[0]["id"] == out[1]["id"] == content_id({"a": 2, "b": 1})
    assert list(out[0])[0] == "id"
    assert out[2] == {"id": "given", "a": 1}


def test_bad_lines_are_reported_with_line_numbers():
    out, bad = collect(
        b'{"a":1}\n',
        b"{oops\n",
        b"[1,2]\n",
        b"\n",
        b'{"a":"\xff"}\n',
        b'{"text":"x"}\n',
        b'{"a":"s"}\n',
        schema={"a": "number"},
    )
    assert [r["a"] for r in out] == [1]
    assert bad == [
        (2, "invalid JSON"),
        (3, "not a JSON object"),
        (5, "invalid UTF-8"),
        (6, "missing field 'a'"),
        (7, "mistyped field 'a'"),
    ]


def test_bool_is_not_a_number():
    _, bad = collect(b'{"a":true}\n', schema={"a": "number"})
    assert bad == [(1, "mistyped field 'a'")]


def test_require_messages():
    assert require({"x": 1.5}, "x", "number") == 1.5
    with pytest.raises(BadRecord, match="missing field 'y'"):
        require({}, "y")
    with pytest.raises(BadRecord, match="field 'x' must be a str, got int"):
        require({"x": 1}, "x")


def test_gz_round_trip_and_read_jsonl(tmp_path):
    path = str(tmp_path / "r.jsonl.gz")
    with JsonlWriter(path) as w:
        for i in range(3):
            w.write({"id": str(i), "v": i})
    assert gzip.open(path).read().count(b"\n") == 3
    assert [r["v"] for r in read_jsonl(path)] == [0, 1, 2]


def test_read_jsonl_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        list(read_jsonl(str(tmp_path / "nope.jsonl")))


def test_line_source_counts_bytes(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"a":1}\n{"a":2}\n')
    src = LineSource(str(p))
    assert len(list(src.open())) == 2 and src.bytes_read == src.total_bytes == 16
    src.close()


def test_truncated_gz_is_input_error(tmp_path):
    p = tmp_path / "t.jsonl.gz"
    p.write_bytes(gzip.compress(b'{"a":1}\n' * 1000)[:-30])
    with pytest.raises(InputError, match="read error"):
        list(read_jsonl(str(p)))


def test_truncate_partial_line(tmp_path):
    p = tmp_path / "o.jsonl"
    p.write_bytes(b'{"id":"a"}\n{"id":"b"}\n{"id":"c')
    truncate_partial_line(str(p))
    assert p.read_bytes() == b'{"id":"a"}\n{"id":"b"}\n'
    p.write_bytes(b'{"id":"half')
    truncate_partial_line(str(p))
    assert p.read_bytes() == b""


def test_existing_records_repairs_and_reads(tmp_path):
    """What --resume reads (io.runner.resume_keys): the whole lines, after cutting a torn last one."""
    p = tmp_path / "o.jsonl"
    p.write_bytes(b'{"id":"a"}\n{"id":"b"}\n{"id":"c')
    assert {r["id"] for r in existing_records(str(p))} == {"a", "b"}
    assert p.read_bytes().endswith(b"}\n")


@pytest.mark.parametrize("spec,expected", [("0/1", (0, 1)), ("2/3", (2, 3))])
def test_shard_parse(spec, expected):
    s = Shard.parse(spec, {})
    assert (s.index, s.count) == expected


@pytest.mark.parametrize("spec", ["3/3", "a/b", "1", "-1/2", "0/0"])
def test_shard_parse_rejects(spec):
    from clipdpo_cli.io.errors import UsageError

    with pytest.raises(UsageError):
        Shard.parse(spec, {})


def test_shard_from_slurm_env_is_zero_based_from_min():
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "4"}
    assert Shard.parse(None, env) == Shard(1, 4)
    assert Shard.parse(None, {}) == Shard(0, 1)


def test_shard_from_a_slurm_array_with_a_step():
    """--array=0-10:2: tasks 0, 2, ..., 10 are shards 0..5 of 6 (before: tasks 6, 8, 10 exited 2)."""
    shards = [
        Shard.parse(None, {"SLURM_ARRAY_TASK_ID": str(t), "SLURM_ARRAY_TASK_COUNT": "6",
                           "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "2"})
        for t in range(0, 11, 2)
    ]  # fmt: skip
    assert shards == [Shard(k, 6) for k in range(6)]
    odd = {"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1",
           "SLURM_ARRAY_TASK_STEP": "3"}  # fmt: skip
    from clipdpo_cli.io.errors import UsageError

    with pytest.raises(UsageError, match=r"SLURM_ARRAY_TASK_STEP=3 .*pass --shard K/N"):
        Shard.parse(None, odd)  # --array=1,4,9: not one range with a step


def test_shards_partition_keys():
    keys = [f"img{i}.jpg" for i in range(500)]
    owners = [[k for k in keys if Shard(i, 3).owns(k)] for i in range(3)]
    assert sorted(sum(owners, [])) == sorted(keys)
    assert all(len(o) > 100 for o in owners)


def test_writer_serializes_unicode_and_numpy(tmp_path):
    import numpy as np

    p = tmp_path / "u.jsonl"
    with JsonlWriter(str(p)) as w:
        w.write({"id": "é", "x": np.float32(1.5)})
    assert orjson.loads(p.read_bytes()) == {"id": "é", "x": 1.5}
