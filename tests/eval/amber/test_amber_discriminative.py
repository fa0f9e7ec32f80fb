"""Discriminative scoring against reference figures computed from the official rules on the real files."""

from __future__ import annotations

import pytest

from clipdpo_cli.eval.amber.evaluate import score_responses
from clipdpo_cli.eval.amber.nlp.builtin import BuiltinNouns
from clipdpo_cli.eval.amber.nlp.similarity import ExactSimilarity
from clipdpo_cli.eval.amber.scorer import GENERATIVE_COUNTERS, AmberCounters, f1_score
from clipdpo_cli.stages.respond import normalize_answer


def _score(data, answer, task="discriminative", **kw):
    responses = [{"id": i, "response": answer(i)} for i in data.ids(task)]
    return score_responses(data, responses, task, BuiltinNouns(data.vocabulary_set), ExactSimilarity(), **kw)


def test_amber_loader_counts(amber_data):
    assert len(amber_data.annotations) == 15220
    assert len(set(amber_data.vocabulary)) == 418
    assert len(amber_data.ids("generative")) == 1004
    assert len(amber_data.ids("discriminative")) == 14216
    assert len(amber_data.ids("existence")) == 4924
    assert len(amber_data.ids("attribute")) == 7628
    assert len(amber_data.ids("relation")) == 1664  # 'discriminative-relation' and 'relation' types
    assert amber_data.safe_words[0] == "orange" and len(amber_data.safe_words) == 9
    # the one known difference between query_all.json and the per-type query files
    all_queries = {q["id"]: q["query"] for q in amber_data.queries("all")}
    assert all_queries[13193] == "Is there a computer in this image?"
    existence = {q["id"]: q["query"] for q in amber_data.queries("existence")}
    assert existence[13193] == "Is there a chair in this image?"


def test_amber_initial_counters_match_metrics_file(shared_amber):
    values = {}
    for line in (shared_amber / "metrics.txt").read_text().splitlines():
        name, _, value = line.partition("=")
        values[name.strip()] = float(value)
    for name, value in GENERATIVE_COUNTERS.items():
        assert values[name] == value
    for prefix in ("qa", "as_qa", "an_qa", "aa_qa", "asso_qa", "ha_qa"):
        for field in ("correct", "no", "ans_no"):
            assert values[f"{prefix}_{field}_num"] == 0.001 and values[f"{prefix}_{field}_score"] == 0


def test_amber_all_no_reference_figures(amber_data):
    result = _score(amber_data, lambda i: "No")
    d = result["discriminative"]
    assert (d["Accuracy"], d["Precision"], d["Recall"], d["F1"]) == (66.3, 66.3, 100.0, 79.7)
    assert d["counts"]["responses"] == 14216 and d["counts"]["truth_no"] == 9427
    # every existence question is a 'no': F1 with the official +0.001 is 2/2.001 -> 100.0
    assert result["existence"]["F1"] == 100.0 and result["existence"]["Accuracy"] == 100.0
    assert result["complete"] is True


def test_amber_all_yes_reference_figures(amber_data):
    d = _score(amber_data, lambda i: "Yes")["discriminative"]
    assert (d["Accuracy"], d["Precision"], d["Recall"], d["F1"]) == (33.7, 0.0, 0.0, 0.0)


def test_amber_lowercase_answers_count_as_wrong(amber_data):
    result = _score(amber_data, lambda i: "no")
    d = result["discriminative"]
    assert (d["Accuracy"], d["Precision"], d["Recall"], d["F1"]) == (0.0, 0.0, 0.0, 0.0)
    assert d["counts"]["not_yes_no"] == 14216
    normalized = _score(amber_data, lambda i: "no.", normalize_answers=True)
    assert normalized["discriminative"]["F1"] == 79.7
    assert normalized["responses"]["normalized_answers"] == 14216


def test_amber_per_type_figures_by_hand(amber_data):
    """Answer 'Yes' on state questions and 'No' elsewhere; check state and attribute against the formulas
    with the official 0.001 / 0.003 denominators."""
    kinds = {i: a["type"] for i, a in amber_data.annotations.items()}
    result = _score(amber_data, lambda i: "Yes" if kinds[i] == "discriminative-attribute-state" else "No")
    annotations = amber_data.annotations.values()
    truths = [a["truth"] for a in annotations if a["type"].startswith("discriminative-attr")]
    n_attr = len(truths)
    n_no = truths.count("no")
    state = [a["truth"] for a in annotations if a["type"] == "discriminative-attribute-state"]
    state_yes, state_no = state.count("yes"), state.count("no")
    assert result["state"]["Accuracy"] == round(state_yes / (len(state) + 0.001) * 100, 1)
    assert result["state"]["Precision"] == 0.0 and result["state"]["Recall"] == 0.0
    answered_no = n_attr - len(state)
    correct = state_yes + (n_no - state_no)
    assert result["attribute"]["Accuracy"] == round(correct / (n_attr + 0.003) * 100, 1)
    p = round((n_no - state_no) / (answered_no + 0.003) * 100, 1)
    r = round((n_no - state_no) / (n_no + 0.003) * 100, 1)
    assert result["attribute"]["Precision"] == p and result["attribute"]["Recall"] == r
    assert result["attribute"]["F1"] == f1_score(p, r, 0.0001)


def test_amber_f1_epsilons():
    assert f1_score(100.0, 100.0, 0.001) == 100.0  # 99.950... rounds up
    assert f1_score(50.0, 50.0, 0.0001) == 50.0
    assert f1_score(93.2, 62.4, 0.0001) == 74.7  # LLaVA-1.5 7B in the paper's Table 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Yes", "Yes"), ("yes.", "Yes"), ("Yes, there is a dog.", "Yes"), (" NO", "No"), ("No.", "No"),
     ("Nope", "Nope"), ("There is no dog.", "There is no dog."), ("yesterday", "yesterday"), ("", "")],
)  # fmt: skip
def test_amber_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_amber_counters_float_accumulation_matches_official_order():
    c = AmberCounters()
    for _ in range(3):
        c.add_answer("discriminative-hallucination", "no", "No")
    c.add_answer("relation", "yes", "Yes")
    num = 0.001
    for _ in range(4):
        num += 1
    assert c.answers["all"]["correct_num"] == num
    assert c.answer_metrics("all")["Accuracy"] == round(4 / num * 100, 1)
    assert c.answer_metrics("relation")["Accuracy"] == round(1 / 1.001 * 100, 1)
