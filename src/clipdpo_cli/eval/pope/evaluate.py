"""Scoring POPE answers as the benchmark's own evaluate.py does (AoiDragon/POPE, evaluate.py).

A free-text answer is read as the official script reads it: its first sentence (the text before the first
'.'), commas removed, split on single spaces; "No", "not" or "no" among those words means no, anything else
(an empty answer, "NO", "Nope", "No!") means yes. Under `--yes-no prob` the answer is yes when p_yes > p_no
(the respond stage's own rule for its "Yes"/"No"). Per set: the confusion counts, accuracy, precision,
recall, F1 and the yes-ratio (the share of answers that are yes, as the official script prints it; lmms-eval's
`pope_yes_ratio` is the share of yes labels instead). A ratio whose denominator is 0 is null (the official
script stops with ZeroDivisionError there).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from clipdpo_cli.eval.pope.data import SPLITS, query_id
from clipdpo_cli.io.errors import InputError

METRICS = ("accuracy", "precision", "recall", "f1", "yes_ratio")


def official_answer(text: str) -> str:
    """'yes' or 'no' as POPE's evaluate.py reads a free answer."""
    if "." in text:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def answer_of(record: dict[str, Any], yes_no: str, where: str) -> str:
    """The answer of one response record: by p_yes/p_no ('prob'), else from its text ('generate': the raw
    `text` a free answer of the respond stage keeps, else `response`)."""
    if yes_no == "prob":
        p_yes, p_no = record.get("p_yes"), record.get("p_no")
        if not all(isinstance(p, int | float) and not isinstance(p, bool) for p in (p_yes, p_no)):
            raise InputError(
                f"{where}: --yes-no prob needs numbers p_yes and p_no (answers of `respond "
                "--yes-no prob`); score free answers with --yes-no generate"
            )
        return "yes" if p_yes > p_no else "no"
    text = record.get("text") if record.get("mode") == "yes_no_generate" else record.get("response")
    if not isinstance(text, str):
        text = record.get("response")
    if not isinstance(text, str):
        raise InputError(f"{where}: field 'response' must be a string")
    return official_answer(text)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def metrics(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Confusion counts and metrics of (answer, label) pairs, 'yes' the positive class."""
    tp = fp = tn = fn = 0
    for answer, label in pairs:
        if answer == "yes":
            tp, fp = (tp + 1, fp) if label == "yes" else (tp, fp + 1)
        else:
            tn, fn = (tn + 1, fn) if label == "no" else (tn, fn + 1)
    total = tp + fp + tn + fn
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = None
    if precision is not None and recall is not None and precision + recall > 0:
        f1 = 2 * precision * recall / (precision + recall)
    return {
        "questions": total,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "accuracy": _ratio(tp + tn, total),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": _ratio(tp + fp, total),
    }


def score_responses(
    questions: dict[str, list[dict[str, Any]]],
    responses: Iterable[dict[str, Any]],
    yes_no: str = "generate",
    limit: int | None = None,
) -> dict[str, Any]:
    """The result object: per set metrics (and their mean over the sets), matched by record id.

    Responses are matched to the questions by id ('random-1', as --write-queries writes them); a response
    without one of these ids is an error, a missing one is counted (`complete` false)."""
    labels = {
        query_id(split, q["question_id"]): (split, q["label"])
        for split, items in questions.items()
        for q in items[:limit]
    }
    answers: dict[str, str] = {}
    duplicates = 0
    for n, record in enumerate(responses, 1):
        rid = record.get("id")
        where = f"response {n} (id {rid!r})"
        if rid not in labels:
            raise InputError(f"{where}: not a POPE question id of the sets scored (ids look like 'random-1')")
        duplicates += rid in answers
        answers[rid] = answer_of(record, yes_no, where)
    per_split: dict[str, list[tuple[str, str]]] = {split: [] for split in questions}
    for rid, (split, label) in labels.items():
        if rid in answers:
            per_split[split].append((answers[rid], label))
    sets = {split: metrics(pairs) for split, pairs in per_split.items()}
    result: dict[str, Any] = {"benchmark": "pope", "yes_no": yes_no, "sets": sets}
    if len(sets) > 1:
        result["mean"] = {m: _mean([s[m] for s in sets.values()]) for m in METRICS}
    missing = len(labels) - len(answers)
    result["responses"] = {
        "scored": len(answers),
        "expected": len(labels),
        "missing": missing,
        "duplicates": duplicates,
    }
    result["complete"] = missing == 0
    return result


def _mean(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(values) / len(values)  # type: ignore[arg-type]


def format_table(result: dict[str, Any]) -> str:
    """The metrics in percent, one row per set (and the mean)."""
    head = f"{'POPE':<12}{'Acc':>8}{'Prec':>8}{'Rec':>8}{'F1':>8}{'Yes%':>8}{'n':>7}"
    rows = [head]

    def pct(v: float | None) -> str:
        return f"{'-':>8}" if v is None else f"{100 * v:>8.2f}"

    for name in [s for s in SPLITS if s in result["sets"]]:
        s = result["sets"][name]
        rows.append(f"{name:<12}" + "".join(pct(s[m]) for m in METRICS) + f"{s['questions']:>7,}")
    if "mean" in result:
        rows.append(f"{'mean':<12}" + "".join(pct(result["mean"][m]) for m in METRICS))
    return "\n".join(rows)
