"""The report's figure data against hand-computed values on small inputs (no matplotlib needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.report.benchmarks import amber_row, zeroshot_table
from clipdpo_cli.report.data import (
    ExamplePicker,
    drops_per_rule,
    pair_stats,
    score_histograms,
    thresholds_from_reasons,
    training_series,
)
from clipdpo_cli.report.inputs import labelled, read_amber, read_train, read_zeroshot
from tests.report.run_files import amber_result, trainer_state, zeroshot_lines


def _cap(score, category="people", **extra):
    return {
        "id": f"c{score}",
        "kind": "caption",
        "text": "a b",
        "clip_score": score,
        "category": category,
        **extra,
    }


def test_caption_histogram_counts_per_category_and_below_threshold():
    records = [
        _cap(27.9),
        _cap(28.0),
        _cap(28.4),
        _cap(29.0),
        _cap(30.2, "objects"),
        _cap(31.0, None),  # no category: "all"
        _cap("high"),  # not a number: counted as missing
        {"id": "q", "kind": "qa", "question_score": 24.0, "clip_score": 31.0, "category": "people"},
    ]
    h = score_histograms(records, thresholds={"caption": 28.0, "question": 25.0})
    assert h.records == 8
    caps = h.captions
    assert caps.counts() == {"people": 4, "objects": 1, "all": 1}  # paper order first, then others
    assert caps.missing == 1
    assert dict(caps.below) == {"people": 1}  # 27.9 only: 28.0 is kept by `score >= 28`
    assert caps.mean("people") == pytest.approx((27.9 + 28.0 + 28.4 + 29.0) / 4)
    edges, counts = caps.binned(0.5)
    assert edges == [27.5, 28.0, 28.5, 29.0, 29.5, 30.0, 30.5, 31.0, 31.5]
    assert counts["people"] == [1, 2, 0, 1, 0, 0, 0, 0]  # [27.5,28) [28,28.5) ... [29,29.5)
    assert counts["objects"] == [0, 0, 0, 0, 0, 1, 0, 0]
    assert counts["all"] == [0, 0, 0, 0, 0, 0, 0, 1]
    assert h.questions.counts() == {"people": 1} and dict(h.questions.below) == {"people": 1}
    assert h.answers.counts() == {"people": 1} and h.answers.threshold is None


def test_histogram_bins_are_exact_at_decimal_edges():
    # 0.3 / 0.1 is 2.9999999999999996 in floating point: the value still falls in [0.3, 0.4)
    h = score_histograms([_cap(0.3), _cap(0.7), _cap(-0.05)]).captions
    edges, counts = h.binned(0.1)
    assert edges[0] == -0.1 and edges[-1] == 0.8
    assert counts["people"] == [1, 0, 0, 0, 1, 0, 0, 0, 1]
    with pytest.raises(ValueError):
        h.binned(0.03)
    # 1.15 * 20 is 22.999999999999996: 1.15 still starts its 0.05 bin; non-finite and bool scores are missing
    h = score_histograms([_cap(1.15), _cap(float("inf")), _cap(float("nan")), _cap(True)]).captions
    assert h.binned(0.05) == ([1.15, 1.2], {"people": [1]}) and h.missing == 3


def test_auto_width_fits_the_range():
    wide = score_histograms([_cap(float(s)) for s in range(0, 100)]).captions
    assert wide.auto_width() == 5.0  # 100 points, target 20 bins (2 sqrt(100))
    narrow = score_histograms([_cap(28.0 + i / 100) for i in range(400)]).captions
    assert narrow.auto_width() == 0.1  # 4 points in 40 bins at most


def test_drops_per_rule_and_recorded_thresholds():
    rejects = [
        {"id": 1, "reject_reason": "caption score < 28"},
        {"id": 2, "reject_reason": "caption > 60 words"},
        {"id": 3, "reject_reason": "caption score < 28"},
        {"id": 4, "reject_reason": "question score < 25.5"},
        {"id": 5, "reject_reason": "answer score < 27"},
        {"id": 6},
    ]
    drops = drops_per_rule(rejects)
    assert drops == [
        ("caption score < 28", 2),
        ("(no reject_reason)", 1),
        ("answer score < 27", 1),
        ("caption > 60 words", 1),
        ("question score < 25.5", 1),
    ]
    assert thresholds_from_reasons(r for r, _ in drops) == {"caption": 28.0, "question": 25.5, "answer": 27.0}
    assert thresholds_from_reasons(["no pair with margin > 2", "text image down-sampled"]) == {}


PAIRS = [
    {"image": "a.jpg", "kind": "caption", "chosen": "one two three", "rejected": "one two", "margin": 2.5},
    {"image": "a.jpg", "kind": "qa", "chosen": "red", "rejected": "blue", "margin": None},
    {"image": "b.jpg", "kind": "caption", "chosen": "w " * 10, "rejected": "x " * 9, "margin": 4.0},
    {"image": "c.jpg", "kind": "caption", "chosen": "a", "rejected": "b", "margin": 3.25},
    {"image": "a.jpg", "kind": "caption", "chosen": "p q", "rejected": "r s", "margin": 2.1},
]


def test_pair_stats():
    s = pair_stats(PAIRS)
    assert s.total == s.with_texts == 5 and dict(s.kinds) == {"caption": 4, "qa": 1}
    assert s.margins == [2.5, 4.0, 3.25, 2.1]
    assert s.chosen_words == [3, 10, 1, 2]
    assert s.rejected_words == [2, 9, 1, 2]
    assert s.pairs_per_image() == {1: 2, 3: 1}  # b and c have one pair, a has three


def test_example_picker_takes_largest_margins_one_per_image_and_some_qa():
    picker = ExamplePicker(3)
    for pair in PAIRS:
        picker.add(pair)
    picked = picker.picked()
    assert [p["margin"] for p in picked] == [4.0, 3.25, None]  # a's best (2.5) loses to b, c; one QA place
    picker = ExamplePicker(4)
    for pair in PAIRS + [{"image": "b.jpg", "kind": "caption", "chosen": "z", "rejected": "y", "margin": 5}]:
        picker.add(pair)
    assert [(p["image"], p["margin"]) for p in picker.picked()] == [
        ("b.jpg", 5),
        ("c.jpg", 3.25),
        ("a.jpg", 2.5),
        ("a.jpg", None),
    ]
    assert ExamplePicker(0).picked() == []


def test_training_series_from_a_trainer_state_folder(tmp_path: Path):
    out = tmp_path / "run"
    (out / "checkpoint-4").mkdir(parents=True)
    (out / "checkpoint-2").mkdir()
    (out / "checkpoint-4" / "trainer_state.json").write_text(json.dumps(trainer_state(4, every=2)))
    (out / "checkpoint-2" / "trainer_state.json").write_text(json.dumps(trainer_state(2, every=2)))
    run = read_train(str(out))
    assert run.source.endswith("checkpoint-4/trainer_state.json") and run.label == "run"
    series = training_series(run.history)
    assert series["loss"] == ([2.0, 4.0], [0.6731, 0.6531])
    assert series["rewards/margins"] == ([2.0, 4.0], [0.04, 0.08])
    assert series["rewards/accuracies"][1] == pytest.approx([0.56, 0.62])
    # train_summary.json wins over the checkpoints, and the closing entry's metrics count (not train_loss)
    summary = {"output_dir": str(out), "pairs": 8, "steps": 4, "log_history": [
        {"train_runtime": 1.3, "train_loss": 0.69, "rewards/margins": 0.006, "step": 4}]}  # fmt: skip
    (out / "train_summary.json").write_text(json.dumps(summary))
    run = read_train(f"mine={out}")
    assert run.label == "mine" and run.summary["pairs"] == 8
    assert training_series(run.history) == {"rewards/margins": ([4.0], [0.006])}


def test_read_train_errors(tmp_path: Path):
    with pytest.raises(InputError, match="no train_summary.json"):
        read_train(str(tmp_path))
    (tmp_path / "trainer_state.json").write_text("{not json")
    with pytest.raises(InputError, match="not a JSON document"):
        read_train(str(tmp_path))


def test_amber_rows_and_labels(tmp_path: Path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps(amber_result(7.8, 51.0, 36.4, 4.2, 74.7, "llava-hf/llava-1.5-7b-hf")))
    other = tmp_path / "other.json"
    other.write_text(json.dumps(amber_result(5.3, 50.2, 27.1, 2.5, 79.9, None)))
    results = read_amber([str(base), f"dpo={other}", str(other)])
    assert [r.label for r in results] == ["llava-hf/llava-1.5-7b-hf", "dpo", "other"]
    row = amber_row(results[0].result)
    assert row == {"CHAIR": 7.8, "Cover": 51.0, "Hal": 36.4, "Cog": 4.2, "Accuracy": 71.7,
                   "Precision": 76.7, "Recall": 73.7, "F1": 74.7, "AMBER": 83.5}  # fmt: skip
    generative_only = {"benchmark": "AMBER", "task": "generative", "generative": {"CHAIR": 1.0, "Cover": 2.0}}
    assert amber_row(generative_only)["F1"] is None and amber_row(generative_only)["CHAIR"] == 1.0
    (tmp_path / "x.json").write_text('{"dataset": "food101"}')
    with pytest.raises(InputError, match="not an eval-amber result"):
        read_amber([str(tmp_path / "x.json")])


def test_zeroshot_table(tmp_path: Path):
    base = tmp_path / "zs_base.jsonl"
    base.write_text(
        "".join(json.dumps(x) + "\n" for x in zeroshot_lines("m0", [50.0, 60.0, 30.0], [80.0, 85.0, 45.0]))
    )
    dpo = tmp_path / "zs_dpo.jsonl"
    dpo.write_text(
        "".join(json.dumps(x) + "\n" for x in zeroshot_lines("m1", [55.0, 64.0, 33.0], [80.0, 85.0, 45.0]))
    )
    results = read_zeroshot([str(base), str(dpo)])
    table = zeroshot_table([(r.label, r.lines) for r in results])
    assert table.columns == ["Food-101", "OxfordPets", "EuroSAT", "Avg"]
    assert table.rows == [
        ("m0 (caption → text)", [50.0, 60.0, 30.0, pytest.approx(140 / 3)]),
        ("m1 (caption → text)", [55.0, 64.0, 33.0, pytest.approx(152 / 3)]),
        ("siglip-so400m (image, CLIP baseline)", [80.0, 85.0, 45.0, pytest.approx(70.0)]),  # shown once
    ]
    one = zeroshot_table([("only", [{"dataset": "set", "caption": {"top1": 25.0}}])])
    assert one.columns == ["set"] and one.rows == [("only (caption → text)", [25.0])]


def test_labelled_arguments(tmp_path: Path):
    assert labelled("base=a.json") == ("base", "a.json")
    assert labelled("a.json") == (None, "a.json")
    odd = tmp_path / "x=y.json"
    odd.write_text("{}")
    assert labelled(str(odd)) == (None, str(odd))  # an existing path with '=' stays a path


def test_amber_figure_leaves_out_metrics_no_model_has():
    from clipdpo_cli.report.figures import amber_figure
    from clipdpo_cli.report.inputs import AmberResult

    generative = {"benchmark": "AMBER", "task": "generative",
                  "generative": {"CHAIR": 8.0, "Cover": 90.0, "Hal": 20.0, "Cog": 5.0}}  # fmt: skip
    results = [AmberResult("base", "b.json", generative), AmberResult("dpo", "d.json", generative)]
    fig = amber_figure(results, [amber_row(r.result) for r in results])
    assert [ax.get_title() for ax in fig.axes] == ["CHAIR ↓", "Cover ↑", "Hal ↓", "Cog ↓"]
    full = amber_result(7.8, 51.0, 36.4, 4.2, 74.7, None)
    fig = amber_figure([AmberResult("x", "x.json", full)], [amber_row(full)])
    assert [ax.get_title() for ax in fig.axes][-2:] == ["F1 ↑", "AMBER ↑"]
