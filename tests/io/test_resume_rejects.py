"""--resume from the shell: one rule for -o and --rejects, ids of any JSON type; duplicate input in pair."""

import orjson

from tests.conftest import run_in_process, run_text_cli


def jsonl(records):
    return "".join(orjson.dumps(r).decode() + "\n" for r in records)


def parse(text):
    return [orjson.loads(line) for line in text.splitlines()]


def ids(path):
    return [r["id"] for r in parse(path.read_text())]


def scored(ids_, image_of=lambda i: f"img{i % 3}.jpg"):
    """Caption records; every other one scores under filter's 28."""
    return [
        {"id": cid, "image": image_of(i), "kind": "caption", "text": f"caption {i} of four",
         "clip_score": 30.0 if i % 2 else 20.0 + i / 10}
        for i, cid in enumerate(ids_)
    ]  # fmt: skip


def filter_run(data, out, rej, *extra):
    return run_text_cli("filter", "-o", str(out), "--rejects", str(rej), *extra, stdin=data)


def test_filter_resume_of_a_finished_run_writes_no_reject_again(tmp_path):
    data = jsonl(scored([f"r{i}" for i in range(10)]))
    out, rej = tmp_path / "kept.jsonl", tmp_path / "rej.jsonl"
    assert filter_run(data, out, rej).returncode == 0
    kept, rejected = out.read_text(), rej.read_text()
    assert len(parse(kept)) == 5 and len(parse(rejected)) == 5
    r = filter_run(data, out, rej, "--resume")
    assert r.returncode == 0, r.stderr
    assert out.read_text() == kept and rej.read_text() == rejected
    assert "0 in, 0 out; 10 already done (resume)" in r.stderr


def test_filter_resume_after_a_kill_repairs_and_completes_both_files(tmp_path):
    data = jsonl(scored([f"r{i}" for i in range(10)]))
    full_out, full_rej = tmp_path / "full.jsonl", tmp_path / "full-rej.jsonl"
    assert filter_run(data, full_out, full_rej).returncode == 0
    kept, rejected = full_out.read_text().splitlines(True), full_rej.read_text().splitlines(True)
    out, rej = tmp_path / "kept.jsonl", tmp_path / "rej.jsonl"
    out.write_text("".join(kept[:3]) + kept[3][:9])  # a kill leaves torn last lines in both files
    rej.write_text("".join(rejected[:2]) + rejected[2][:12])
    r = filter_run(data, out, rej, "--resume")
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "".join(kept) and rej.read_text() == "".join(rejected)
    assert "5 in, 2 out; 5 already done (resume); dropped 3 caption score < 28" in r.stderr


def test_integer_ids_resume_exactly(tmp_path):
    """COCO-style integer ids: a resumed run skips them like string ids (it wrote them twice)."""
    data = jsonl(scored(list(range(1000, 1010))))
    out, rej = tmp_path / "kept.jsonl", tmp_path / "rej.jsonl"
    assert filter_run(data, out, rej).returncode == 0
    kept, rejected = out.read_text(), rej.read_text()
    assert filter_run(data, out, rej, "--resume").returncode == 0
    assert out.read_text() == kept and rej.read_text() == rejected
    assert ids(out) == [1001, 1003, 1005, 1007, 1009]
    # after a kill: the missing integer ids are done, the others not again
    out.write_text("".join(kept.splitlines(True)[:2]))
    rej.write_text("".join(rejected.splitlines(True)[:1]))
    assert filter_run(data, out, rej, "--resume").returncode == 0
    assert out.read_text() == kept and rej.read_text() == rejected


def test_mixed_id_types_stay_apart_on_resume(tmp_path):
    """1 and "1" (and 2.5, a list) are different ids: each is written once, neither stands for the other."""
    all_ids = ["1", 1, 2.5, "2.5", [3, "x"], "a", 7, "7"]
    data = jsonl(scored(all_ids))
    full, full_rej = tmp_path / "full.jsonl", tmp_path / "full-rej.jsonl"
    assert filter_run(data, full, full_rej).returncode == 0
    out, rej = tmp_path / "kept.jsonl", tmp_path / "rej.jsonl"
    # a kill after the non-string ids: "2.5" and "7" are not done although 2.5 and 7 are
    out.write_text(jsonl([r for r in parse(full.read_text()) if r["id"].__class__ is not str]))
    rej.write_text(jsonl([r for r in parse(full_rej.read_text()) if r["id"].__class__ is not str]))
    r = filter_run(data, out, rej, "--resume")
    assert r.returncode == 0, r.stderr
    assert sorted(map(repr, ids(out))) == sorted(map(repr, ids(full)))
    assert sorted(map(repr, ids(rej))) == sorted(map(repr, ids(full_rej)))
    assert len(ids(out)) + len(ids(rej)) == len(all_ids)


def pair_input(id_of=str):
    """Three images: one pairs, one has no pair with margin > 2 (rejected), and a QA record under 28."""
    caps = [("a", 34.0, "i1"), ("b", 30.0, "i1"), ("c", 31.0, "i2"), ("d", 30.0, "i2")]
    records = [
        {"id": id_of(n), "image": image, "kind": "caption", "text": f"caption {cid} of four", "clip_score": s}
        for n, (cid, s, image) in enumerate(caps)
    ]
    records.append({"id": id_of(9), "image": "i3", "kind": "qa", "question": "What?", "answer_pos": "x",
                    "answer_neg": "y", "clip_score": 20.0})  # fmt: skip
    return jsonl(records)


def pair_run(data, out, rej, *extra):
    return run_text_cli("pair", "-o", str(out), "--rejects", str(rej), *extra, stdin=data)


def test_pair_resume_writes_no_reject_again(tmp_path):
    for id_of in (str, int):
        data = pair_input(id_of)
        out, rej = tmp_path / f"pairs-{id_of.__name__}.jsonl", tmp_path / f"rej-{id_of.__name__}.jsonl"
        assert pair_run(data, out, rej).returncode == 0
        pairs, rejected = out.read_text(), rej.read_text()
        assert len(parse(pairs)) == 1 and len(parse(rejected)) == 3
        r = pair_run(data, out, rej, "--resume")
        assert r.returncode == 0, r.stderr
        assert out.read_text() == pairs and rej.read_text() == rejected
        # the pair and the three rejects are done; the rules see the groups again but write nothing
        assert "5 in, 0 out; 4 already done (resume)" in r.stderr and "dropped" not in r.stderr
        # a kill that left a torn line in the rejects file: repaired, completed, nothing twice
        rej.write_text(rejected.splitlines(True)[0] + rejected.splitlines(True)[1][:10])
        r = pair_run(data, out, rej, "--resume")
        assert r.returncode == 0, r.stderr
        assert out.read_text() == pairs and rej.read_text() == rejected


def test_pair_any_order_drops_duplicated_input(tmp_path):
    records = [
        {"id": f"c{i}", "image": f"img{i % 2}.jpg", "kind": "caption", "text": f"caption {i} of four",
         "clip_score": 20.0 + 3 * i}
        for i in range(8)
    ]  # fmt: skip
    once = jsonl(records)
    args = ("pair", "--input-order", "any", "--per-image", "3")
    single = run_text_cli(*args, stdin=once)
    doubled = run_text_cli(*args, stdin=once + once)
    assert single.returncode == 0 and doubled.returncode == 0, doubled.stderr
    assert len(parse(single.stdout)) == 6
    assert sorted(doubled.stdout.splitlines()) == sorted(single.stdout.splitlines())
    assert "16 in, 6 out; dropped 8 duplicate id" in doubled.stderr


def test_pair_grouped_drops_a_repeated_record(tmp_path):
    records = [
        {"id": i, "image": "img.jpg", "text": f"caption {i} of four", "clip_score": 20.0 + 3 * i}
        for i in range(3)
    ]
    repeated = [records[0], records[1], records[1], records[2], records[0]]
    single = run_text_cli("pair", "--per-image", "3", stdin=jsonl(records))
    r = run_text_cli("pair", "--per-image", "3", stdin=jsonl(repeated))
    assert r.returncode == 0, r.stderr
    assert r.stdout == single.stdout and len(parse(r.stdout)) == 3
    assert "5 in, 3 out; dropped 2 duplicate id" in r.stderr


def test_pair_ranks_ties_between_string_and_integer_ids():
    """Equal margins are ordered by id; with "a" and 1 in one image this was a TypeError traceback."""
    records = [{"id": "a", "text": "one two three four", "image": "i.jpg", "clip_score": 30.0},
               {"id": 1, "text": "one two three five", "image": "i.jpg", "clip_score": 30.0},
               {"id": 2, "text": "one two three six", "image": "i.jpg", "clip_score": 25.0}]  # fmt: skip
    r = run_text_cli("pair", "--per-image", "2", stdin=jsonl(records))
    assert r.returncode == 0, r.stderr
    assert [p["from"] for p in parse(r.stdout)] == [["a", 2], [1, 2]]


def test_a_reject_without_id_is_known_by_its_content():
    """`ask` rejects an image without captions as a record without id: a resumed run writes it once."""
    from clipdpo_cli.io.records import record_key
    from clipdpo_cli.io.stage import StageContext

    record = {"image": "x.jpg", "from": [1, "b"]}
    written = []
    ctx = StageContext("ask", rejects=written.append)
    ctx.drop(record, "image without captions")
    again = StageContext("ask", rejects=written.append, rejected={record_key(written[0])})
    again.drop(record, "image without captions")
    again.drop({**record, "image": "y.jpg"}, "image without captions")
    assert [r["image"] for r in written] == ["x.jpg", "y.jpg"]
    assert again.stats.resumed == 1 and dict(again.stats.dropped) == {"image without captions": 1}


def test_resume_needs_an_uncompressed_rejects_file(tmp_path):
    out, rej = tmp_path / "kept.jsonl", tmp_path / "rej.jsonl.gz"
    r = run_in_process(
        "filter", "-o", str(out), "--rejects", str(rej), "--resume", stdin=jsonl(scored(["a"]))
    )
    assert r.returncode == 2 and "--resume needs an uncompressed --rejects file" in r.stderr
