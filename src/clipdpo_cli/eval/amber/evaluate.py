"""Scoring a list of responses against the AMBER annotations: the result object of `eval-amber`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from clipdpo_cli.eval.amber.data import GENERATIVE, AmberData, in_task
from clipdpo_cli.eval.amber.nlp import NounExtractor
from clipdpo_cli.eval.amber.scorer import AmberCounters, amber_score, score_description
from clipdpo_cli.io.errors import InputError
from clipdpo_cli.stages.respond import normalize_answer

# Sections reported for each task, in the order of the paper's Table 2 and the official printout.
ANSWER_SECTIONS = ("existence", "attribute", "state", "number", "action", "relation")
SECTIONS = {
    "all": ("generative", "discriminative", *ANSWER_SECTIONS),
    "generative": ("generative",),
    "discriminative": ("discriminative", *ANSWER_SECTIONS),
    "existence": ("existence",),
    "attribute": ("attribute", "state", "number", "action"),
    "relation": ("relation",),
}


def score_responses(
    data: AmberData,
    responses: Iterable[dict[str, Any]],
    task: str,
    nouns: NounExtractor,
    similarity: Any,
    normalize_answers: bool = False,
) -> dict[str, Any]:
    """Score responses ({"id": int, "response": str}) in the given order; return the result object.

    Responses outside `task` are ignored (they would not change the task's figures). Duplicated ids are
    counted each time, as the official scorer does, and reported.
    """
    counters = AmberCounters()
    seen: Counter[int] = Counter()
    outside = normalized = 0
    association, vocabulary, safe = data.association, data.vocabulary_set, data.safe_words
    for item in responses:
        rid = item["id"]
        annotation = data.annotations.get(rid)
        if annotation is None:
            raise InputError(f"response id {rid} is not an AMBER question id")
        kind = annotation["type"]
        if not in_task(kind, task):
            outside += 1
            continue
        seen[rid] += 1
        text = item["response"]
        if kind == GENERATIVE:
            counts = score_description(
                nouns.nouns(text), annotation["truth"], annotation["hallu"], association, vocabulary, safe,
                similarity.similar,
            )
            counters.add_description(counts)
        else:
            if normalize_answers:
                answer = normalize_answer(text)
                normalized += answer != text
                text = answer
            counters.add_answer(kind, annotation["truth"], text)
    expected = data.ids(task)
    missing = sum(1 for i in expected if i not in seen)
    result = build_result(counters, task)
    result["responses"] = {
        "scored": sum(seen.values()),
        "expected": len(expected),
        "missing": missing,
        "duplicates": sum(n - 1 for n in seen.values() if n > 1),
        "outside_task": outside,
        "normalized_answers": normalized,
    }
    result["complete"] = missing == 0
    result["nlp"] = {
        "backend": nouns.name,
        "similarity": similarity.name,
        "similarity_threshold": similarity.threshold,
    }
    result["normalize_answers"] = normalize_answers
    return result


def build_result(counters: AmberCounters, task: str) -> dict[str, Any]:
    """Metrics (and their integer counts) of the sections a task reports, plus the AMBER score."""
    result: dict[str, Any] = {"benchmark": "AMBER", "task": task}
    sections = SECTIONS[task]
    if "generative" in sections and "discriminative" in sections:
        result["AMBER"] = None  # filled below, kept first for readability
    for section in sections:
        if section == "generative":
            result[section] = {**counters.generative_metrics(), "counts": counters.generative_counts()}
        else:
            group = "all" if section == "discriminative" else section
            result[section] = {**counters.answer_metrics(group), "counts": counters.answer_counts(group)}
    if "AMBER" in result:
        result["AMBER"] = amber_score(result["generative"]["CHAIR"], result["discriminative"]["F1"])
    return result


def format_table(result: dict[str, Any]) -> str:
    """The result as a readable table (stderr), columns in the order of the paper's Table 2."""
    lines = []
    nlp = result.get("nlp", {})
    backend, similarity = nlp.get("backend", "?"), nlp.get("similarity", "?")
    headline = f"AMBER ({result['task']}; nlp {backend}, similarity {similarity})"
    resp = result.get("responses", {})
    if result.get("complete") is False:
        headline += (
            f" -- PARTIAL: {resp.get('missing', 0):,} of {resp.get('expected', 0):,} responses missing, "
            "the figures cover a subset"
        )
    lines.append(headline)
    gen, dis = result.get("generative"), result.get("discriminative")
    head, row = [], []
    if gen:
        for key in ("CHAIR", "Cover", "Hal", "Cog"):
            head.append(key)
            row.append(gen[key])
    if dis:
        for key, label in (("Accuracy", "Acc."), ("Precision", "P."), ("Recall", "R."), ("F1", "F1")):
            head.append(label)
            row.append(dis[key])
    if result.get("AMBER") is not None:
        head.append("AMBER")
        row.append(result["AMBER"])
    if head:
        lines.append("  " + "".join(f"{h:>8}" for h in head))
        lines.append("  " + "".join(f"{v:>8.1f}" for v in row))
    answer_rows = [s for s in ANSWER_SECTIONS if s in result]
    if answer_rows:
        lines.append(f"  {'':<12}" + "".join(f"{h:>8}" for h in ("Acc.", "P.", "R.", "F1", "n")))
        for section in answer_rows:
            m = result[section]
            name = f"  {section}" if section in ("state", "number", "action") else section
            values = "".join(f"{m[k]:>8.1f}" for k in ("Accuracy", "Precision", "Recall", "F1"))
            lines.append(f"  {name:<12}{values}{m['counts']['responses']:>8}")
    notes = [f"{resp.get('scored', 0):,} responses scored of {resp.get('expected', 0):,} expected"]
    if resp.get("missing"):
        notes.append(f"{resp['missing']:,} missing")
    if resp.get("duplicates"):
        notes.append(f"{resp['duplicates']:,} duplicated ids (counted each time)")
    not_yes_no = (dis or {}).get("counts", {}).get("not_yes_no")
    if not_yes_no is None:
        not_yes_no = sum(result[s]["counts"]["not_yes_no"] for s in ("existence", "attribute", "relation")
                         if s in result)  # fmt: skip
    if not_yes_no:
        hint = "" if result.get("normalize_answers") else " (see --normalize-answers)"
        notes.append(f"{not_yes_no:,} answers not exactly Yes/No, counted wrong{hint}")
    lines.append("  " + "; ".join(notes))
    return "\n".join(lines)
