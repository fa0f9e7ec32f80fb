"""`clipdpo report --pope/--chair/--compare`: the checkpoints x benchmarks table, its values and labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipdpo_cli.report.benchmarks import benchmark_table
from tests.conftest import invoke_cli, run_in_process
from tests.report.run_files import amber_result, zeroshot_lines


def pope_result(f1s: list[float], accs: list[float], model: str | None = None, complete: bool = True) -> dict:
    sets = {
        s: {"accuracy": a, "f1": f, "precision": 0.5, "recall": 0.5, "yes_ratio": 0.5, "questions": 3000}
        for s, a, f in zip(("random", "popular", "adversarial"), accs, f1s, strict=True)
    }
    result = {
        "benchmark": "pope",
        "yes_no": "prob",
        "sets": sets,
        "complete": complete,
        "mean": {"accuracy": sum(accs) / 3, "f1": sum(f1s) / 3},
        "responses": {"scored": 9000 if complete else 10, "expected": 9000},
    }
    if model:
        result["model"] = model
    return result


def chair_result(chair_s: float, chair_i: float, recall: float, model: str | None = None) -> dict:
    result = {"benchmark": "chair", "CHAIRs": chair_s, "CHAIRi": chair_i, "recall": recall, "length": 90.0}
    if model:
        result["model"] = model
    return result


def test_table_values():
    table = benchmark_table(
        amber=[
            ("base", amber_result(10.0, 50.0, 40.0, 4.0, 80.0, None)),
            ("dpo", amber_result(6.0, 48.0, 30.0, 2.0, 84.0, None)),
        ],
        pope=[
            ("dpo", pope_result([0.86, 0.85, 0.84], [0.87, 0.86, 0.85])),
            ("base", pope_result([0.80, 0.79, 0.78], [0.81, 0.80, 0.79])),
        ],
        chair=[("base", chair_result(0.5, 0.25, 0.6))],
        zeroshot=[("dpo", zeroshot_lines("m", [60.0, 70.0, 80.0], None))],
    )
    assert [c.title for c in table.columns] == [
        "AMBER CHAIR ↓",
        "AMBER Hal ↓",
        "AMBER F1 ↑",
        "AMBER score ↑",
        "POPE Acc ↑",
        "POPE F1 ↑",
        "CHAIR CHAIRs ↓",
        "CHAIR CHAIRi ↓",
        "CHAIR Recall ↑",
        "zero-shot top-1 ↑",
    ]
    rows = dict(table.rows)
    assert list(rows) == ["base", "dpo"]  # first seen first, results joined by label
    assert rows["base"] == pytest.approx(
        [10.0, 40.0, 80.0, 85.0, 80.0, 79.0, 50.0, 25.0, 60.0, None], nan_ok=True
    )
    assert rows["dpo"][:6] == pytest.approx([6.0, 30.0, 84.0, 89.0, 86.0, 85.0])
    assert rows["dpo"][6:9] == [None, None, None] and rows["dpo"][9] == pytest.approx(70.0)


def test_single_pope_set_is_its_own_figure():
    one = {"benchmark": "pope", "sets": {"adversarial": {"accuracy": 0.5, "f1": 0.25}}}
    assert dict(benchmark_table(pope=[("m", one)]).rows)["m"] == [50.0, 25.0]


def test_report_cli_compare(tmp_path: Path):
    files = {
        "a.json": amber_result(10.0, 50.0, 40.0, 4.0, 80.0, "org/base-7b"),
        "p1.json": pope_result([0.8, 0.8, 0.8], [0.9, 0.9, 0.9], "org/base-7b"),
        "p2.json": pope_result([0.7, 0.7, 0.7], [0.6, 0.6, 0.6], complete=False),
        "c.json": chair_result(0.4, 0.2, 0.5),
    }
    for name, result in files.items():
        (tmp_path / name).write_text(json.dumps(result))
    html = tmp_path / "r.html"
    done = invoke_cli(
        "report",
        "--amber",
        str(tmp_path / "a.json"),
        "--pope",
        str(tmp_path / "p1.json"),
        "--pope",
        f"dpo={tmp_path / 'p2.json'}",
        "--chair",
        f"dpo={tmp_path / 'c.json'}",
        "-o",
        str(html),
    )
    assert done.exit_code == 0, done.output
    page = html.read_text()
    assert 'id="benchmarks"' in page and 'id="amber"' in page
    assert '<td class="">org/base-7b</td>' in page and '<td class="">dpo</td>' in page
    assert "90.0" in page and "40.0" in page and "20.0" in page  # POPE acc of base, CHAIRs / CHAIRi of dpo
    assert "dpo: partial POPE result, 10 of 9000 questions scored." in page
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"benchmark": "AMBER"}))
    done = run_in_process("report", "--pope", str(bad), "-o", str(html))
    assert done.returncode == 1 and "not an eval-pope result" in done.stderr
