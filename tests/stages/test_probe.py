"""`clipdpo probe` (paper Sec. 3.1 / Fig. 2): hand-computed counts, merging by id, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clipdpo_cli import cli
from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.stages.probe import format_table, merge_by_id, probe
from tests.conftest import invoke_cli


def _rec(id_: str, kind: str, src: str, lvlm: Any, dfn: Any, siglip: Any = None) -> dict[str, Any]:
    r = {"id": id_, "image": f"{src}.jpg", "text": f"caption {id_}", "hallucination": kind, "from": src,
         "lvlm_logp": lvlm, "dfn": dfn, "siglip": siglip}  # fmt: skip
    if siglip is None:
        del r["siglip"]
    return r


# Originals o1, o2; per type one variant of each. Comments: LVLM / dfn / siglip, "v" = variant higher,
# "o" = original higher, "=" = tie.
RECORDS = [
    _rec("o1", "none", "o1", -1.0, 30, 10),
    _rec("o2", "none", "o2", -2.0, 25, 12),
    _rec("o3", "none", "o3", -1.0, 30, 10),
    _rec("e1", "existence", "o1", -0.5, 28, 11),  # v o v: dfn corrects
    _rec("e2", "existence", "o2", -1.5, 25, 5),  # v = o: siglip corrects
    _rec("a1", "attribute", "o1", -1.0, 31, 10),  # = v =
    _rec("a2", "attribute", "o2", -3.0, 20, 13),  # o o v
    _rec("r1", "relation", "o1", -0.9, 29, 9),  # v o o: both correct
    _rec("r2", "relation", "o2", -2.5, 26, 12),  # o v =
    _rec("x1", "existence", "o9", -0.1, 1, 1),  # original missing
    _rec("e3", "existence", "o3", -0.1, "high", 1),  # non-numeric dfn
    _rec("a3", "attribute", "o3", -0.1, 1),  # no siglip
    {"id": "n1", "text": "no type", "from": "o1", "lvlm_logp": 0, "dfn": 0, "siglip": 0},
]


def _ranks(v: int, o: int, t: int) -> dict[str, int]:
    return {"ranks_variant_higher": v, "ranks_original_higher": o, "ties": t}


def _scorer(v: int, o: int, t: int, c: int | None, pct: float | None) -> dict[str, Any]:
    return {**_ranks(v, o, t), "corrects_lvlm": c, "corrects_lvlm_pct": pct}


EXPECTED_TYPES = {
    "existence": {"variants": 2, "lvlm_prefers": 2, "lvlm": _ranks(2, 0, 0),
                  "scorers": {"dfn": _scorer(0, 1, 1, 1, 50.0), "siglip": _scorer(1, 1, 0, 1, 50.0)}},
    "attribute": {"variants": 2, "lvlm_prefers": 0, "lvlm": _ranks(0, 1, 1),
                  "scorers": {"dfn": _scorer(1, 1, 0, 0, None), "siglip": _scorer(1, 0, 1, 0, None)}},
    "relation": {"variants": 2, "lvlm_prefers": 1, "lvlm": _ranks(1, 1, 0),
                 "scorers": {"dfn": _scorer(1, 1, 0, 1, 100.0), "siglip": _scorer(0, 1, 1, 1, 100.0)}},
}  # fmt: skip
EXPECTED_ALL = {
    "variants": 6, "lvlm_prefers": 3, "lvlm": _ranks(3, 2, 1),
    "scorers": {"dfn": _scorer(2, 3, 1, 2, 66.67), "siglip": _scorer(2, 2, 2, 2, 66.67)},
}  # fmt: skip
EXPECTED_SKIPPED = {"original missing": 1, "non-numeric field 'dfn'": 1, "missing field 'siglip'": 1,
                    "no hallucination type": 1}  # fmt: skip


def test_hand_computed_counts():
    result = probe(merge_by_id(RECORDS), "lvlm_logp", ["dfn", "siglip"])
    assert list(result["types"]) == ["existence", "attribute", "relation"]
    assert result["types"] == EXPECTED_TYPES
    assert result["all"] == EXPECTED_ALL
    assert result["skipped"] == EXPECTED_SKIPPED
    assert result["fields"] == {"lvlm": "lvlm_logp", "lvlm_present": True, "scorers": ["dfn", "siglip"]}
    assert result["input"] == {"records": 13, "originals": 3, "variants": 10}


def test_without_lvlm_field_scorers_only():
    records = [{k: v for k, v in r.items() if k != "lvlm_logp"} for r in RECORDS]
    result = probe(merge_by_id(records), "lvlm_logp", ["dfn"])
    assert result["fields"]["lvlm_present"] is False
    # a3 (no siglip) is usable now: dfn 1 < 30
    assert result["types"]["attribute"] == {
        "variants": 3, "lvlm_prefers": None, "lvlm": None,
        "scorers": {"dfn": _scorer(1, 2, 0, None, None)},
    }  # fmt: skip
    assert result["all"]["scorers"]["dfn"] == _scorer(2, 4, 1, None, None)
    table = format_table(result)
    assert "LVLM prefers" not in table and "dfn % orig. higher" in table


def test_merge_by_id_later_fields_win_first_order_kept():
    merged = merge_by_id([{"id": "a", "x": 1, "s": "m1"}, {"id": "b"}, {"id": "a", "y": 2, "s": "m2"}])
    assert list(merged) == ["a", "b"]
    assert merged["a"] == {"id": "a", "x": 1, "s": "m2", "y": 2}


def test_unusable_inputs_raise_one_line_errors():
    with pytest.raises(InputError, match="no records"):
        probe({})
    with pytest.raises(InputError, match="no hallucinated variants"):
        probe(merge_by_id(RECORDS[:3]), scorer_fields=["dfn"])
    message = r"no usable variant: all 10 skipped \(missing field 'clip_score': 8, original missing: 1, "
    with pytest.raises(InputError, match=message):
        probe(merge_by_id(RECORDS))
    with pytest.raises(UsageError):
        probe(merge_by_id(RECORDS), "dfn", ["dfn"])


def _write(path: Path, records: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


@pytest.fixture
def with_probe(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "probe"))


def test_cli_merges_two_scorer_files(tmp_path, with_probe):
    # as `clipdpo score --score-field dfn` and `--score-field siglip` over the same records would write
    first = [{k: v for k, v in r.items() if k != "siglip"} | {"scorer": "dfn-h14"} for r in RECORDS]
    second = [{k: v for k, v in r.items() if k != "dfn"} | {"scorer": "siglip"} for r in RECORDS]
    a, b = _write(tmp_path / "a.jsonl", first), _write(tmp_path / "b.jsonl", second)
    r = invoke_cli("probe", a, b, "--score-field", "dfn", "--score-field", "siglip")
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["types"] == EXPECTED_TYPES and result["all"] == EXPECTED_ALL
    assert result["skipped"] == EXPECTED_SKIPPED
    lines = r.stderr.splitlines()
    assert lines[0] == "probe: LVLM field 'lvlm_logp'"
    assert lines[1].split() == ["n", "LVLM", "prefers", "dfn", "%", "corrected", "siglip", "%", "corrected"]
    assert lines[2].split() == ["existence", "2", "2", "50.0", "50.0"]
    assert lines[3].split() == ["attribute", "2", "0", "-", "-"]
    assert lines[5].split() == ["all", "6", "3", "66.7", "66.7"]
    assert len({len(line) for line in lines[1:6]}) == 1  # aligned
    assert lines[6].startswith("  4 variants skipped: ")


def test_cli_output_file_and_quiet(tmp_path, with_probe):
    src = _write(tmp_path / "in.jsonl", RECORDS)
    out = tmp_path / "fig2.json"
    r = invoke_cli("probe", src, "--score-field", "siglip", "-o", str(out), "--quiet")
    assert r.exit_code == 0 and r.stdout == "" and r.stderr == ""
    # siglip alone: a3 (no siglip) is still skipped, e3 (non-numeric dfn) now counts: preferred, corrected
    assert json.loads(out.read_text())["all"]["scorers"]["siglip"] == _scorer(2, 3, 2, 3, 75.0)


@pytest.mark.parametrize("content", ["", json.dumps(RECORDS[0]) + "\n"])
def test_cli_unusable_input_is_one_line_error(tmp_path, with_probe, capsys, content):
    path = tmp_path / "in.jsonl"
    path.write_text(content)
    with pytest.raises(SystemExit) as exc:
        cli.main(["probe", str(path)])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("clipdpo probe: error: ")
