"""AMBER's counting, ported from the official scorer (inference.py of the benchmark's repository).

Everything here reproduces that scorer's arithmetic on purpose, quirks included:
- counters start at 0.001 (denominators) or 0 (numerators) and grow by float additions in input order;
- in a description, an object mention matching the image's truth or association words credits the first
  matching truth slot only (so a word listed twice in `truth` can never be fully covered);
- a mention matching a hallucination word credits Cog and is still counted as a hallucination, unless a
  word of the safe list is similar to it (similarity > threshold);
- the 9 global safe words are skipped but still counted in CHAIR's denominator;
- discriminative answers count only when exactly "Yes" or "No"; the positive class is "No";
- F1 is computed from the rounded precision and recall, with +0.0001 in the denominator (+0.001 for
  existence), and every figure is round(x * 100, 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from clipdpo_cli.eval.amber.data import ATTRIBUTE_GROUPS, group_of

# Initial counter values, as in the benchmark's data/metrics.txt.
GENERATIVE_COUNTERS = {
    "chair_score": 0, "chair_num": 0.001,
    "safe_cover_score": 0, "safe_cover_num": 0.001,
    "hallu_cover_score": 0, "hallu_cover_num": 0.001,
    "non_hallu_score": 0, "non_hallu_num": 0.001,
}  # fmt: skip
ANSWER_FIELDS = ("correct", "no", "ans_no")  # each has a _score (from 0) and a _num (from 0.001)
GROUPS = ("all", "existence", "state", "number", "action", "relation")

Similar = Callable[[str, str], bool]


@dataclass
class DescriptionCounts:
    """What one description contributes: mentions kept, which of them hallucinate, slots credited."""

    mentions: list[str]
    hallucinated: list[bool]
    truth_covered: list[int]  # one 0/1 per entry of the annotation's truth list
    hallu_covered: list[int]  # one 0/1 per entry of the annotation's hallu list

    @property
    def n_hallucinated(self) -> int:
        return sum(self.hallucinated)


def _expand(words: Sequence[str], association: dict[str, list[str]]) -> tuple[list[str], list[int]]:
    """The official candidate list: each word's associated words (in order), then the words themselves;
    with, for each candidate, the index of the word whose slot it credits."""
    candidates: list[str] = []
    slots: list[int] = []
    for index, word in enumerate(words):
        related = association.get(word, [])
        candidates.extend(related)
        slots.extend([index] * len(related))
    candidates.extend(words)
    slots.extend(range(len(words)))
    return candidates, slots


def _first(candidates: list[str], word: str) -> int:
    try:
        return candidates.index(word)
    except ValueError:
        return -1


def score_description(
    nouns: Iterable[str],
    truth: Sequence[str],
    hallu: Sequence[str],
    association: dict[str, list[str]],
    vocabulary: frozenset[str] | set[str],
    global_safe: Sequence[str],
    similar: Similar,
) -> DescriptionCounts:
    """Count one description's object mentions against its image's annotation (official algorithm).

    `nouns` are the lemmatised nouns of the response, in order; those outside `vocabulary` are ignored.
    """
    mentions = [n for n in nouns if n in vocabulary]
    safe_candidates, safe_slots = _expand(truth, association)
    hallu_candidates, hallu_slots = _expand(hallu, association)
    truth_covered = [0] * len(truth)
    hallu_covered = [0] * len(hallu)
    hallucinated = [False] * len(mentions)
    global_safe_set = set(global_safe)

    for position, noun in enumerate(mentions):
        if noun in global_safe_set:
            continue
        j = _first(safe_candidates, noun)
        if j >= 0:
            truth_covered[safe_slots[j]] = 1
            continue
        j = _first(hallu_candidates, noun)
        if j >= 0:
            hallu_covered[hallu_slots[j]] = 1  # and no `continue`: it may still be a hallucination
        for j, word in enumerate(hallu_candidates):
            if similar(noun, word):
                hallu_covered[hallu_slots[j]] = 1
                break
        covered = False
        for j, word in enumerate(safe_candidates):
            if similar(noun, word):
                truth_covered[safe_slots[j]] = 1
                covered = True
                break
        if not covered:
            hallucinated[position] = True
    return DescriptionCounts(mentions, hallucinated, truth_covered, hallu_covered)


def _answer_counters() -> dict[str, float]:
    counters: dict[str, float] = {}
    for name in ANSWER_FIELDS:
        counters[f"{name}_score"] = 0
        counters[f"{name}_num"] = 0.001
    return counters


def rate(score: float, num: float) -> float:
    """round(score / num * 100, 1), as every AMBER figure."""
    return round(score / num * 100, 1)


def f1_score(precision: float, recall: float, eps: float) -> float:
    """F1 from already rounded percentages, as the official scorer computes it."""
    p, r = precision / 100, recall / 100
    return round(2 * p * r / (p + r + eps) * 100, 1)


class AmberCounters:
    """The official scorer's counters; feed descriptions and answers in input order, then read metrics."""

    def __init__(self) -> None:
        self.generative: dict[str, float] = dict(GENERATIVE_COUNTERS)
        self.answers: dict[str, dict[str, float]] = {g: _answer_counters() for g in GROUPS}
        self.n_descriptions = 0
        self.n_answers = {g: 0 for g in GROUPS}
        self.not_yes_no = {g: 0 for g in GROUPS}

    # -- accumulation -------------------------------------------------------------------------------
    def add_description(self, counts: DescriptionCounts) -> None:
        g = self.generative
        n_hal = counts.n_hallucinated
        g["chair_score"] += n_hal
        g["chair_num"] += len(counts.mentions)
        g["safe_cover_score"] += sum(counts.truth_covered)
        g["safe_cover_num"] += len(counts.truth_covered)
        g["hallu_cover_score"] += sum(counts.hallu_covered)
        g["hallu_cover_num"] += len(counts.hallu_covered)
        if n_hal == 0:
            g["non_hallu_score"] += 1
        g["non_hallu_num"] += 1
        self.n_descriptions += 1

    def add_answer(self, kind: str, truth: str, response: str) -> None:
        """One yes/no answer of annotation type `kind` with ground truth 'yes' or 'no'."""
        for group in ("all", group_of(kind)):
            c = self.answers[group]
            self.n_answers[group] += 1
            if response not in ("Yes", "No"):
                self.not_yes_no[group] += 1
            c["correct_num"] += 1
            if truth == "yes":
                if response == "Yes":
                    c["correct_score"] += 1
            else:
                c["no_num"] += 1
                if response == "No":
                    c["correct_score"] += 1
                    c["no_score"] += 1
            if response == "No":
                c["ans_no_num"] += 1
                if truth == "no":
                    c["ans_no_score"] += 1

    # -- metrics ------------------------------------------------------------------------------------
    def generative_metrics(self) -> dict[str, float]:
        g = self.generative
        return {
            "CHAIR": rate(g["chair_score"], g["chair_num"]),
            "Cover": rate(g["safe_cover_score"], g["safe_cover_num"]),
            "Hal": round(100 - g["non_hallu_score"] / g["non_hallu_num"] * 100, 1),
            "Cog": rate(g["hallu_cover_score"], g["hallu_cover_num"]),
        }

    def _summed(self, groups: Sequence[str]) -> dict[str, float]:
        """Counters of several groups added in the official order (so 0.001 + 0.001 + 0.001 too)."""
        total: dict[str, float] = {}
        for key in self.answers[groups[0]]:
            value = self.answers[groups[0]][key]
            for group in groups[1:]:
                value = value + self.answers[group][key]
            total[key] = value
        return total

    def answer_metrics(self, group: str) -> dict[str, float]:
        """Accuracy, precision, recall, F1 of a group: all, existence, attribute, state, number, action,
        relation."""
        c = self._summed(ATTRIBUTE_GROUPS) if group == "attribute" else self.answers[group]
        precision = rate(c["ans_no_score"], c["ans_no_num"])
        recall = rate(c["no_score"], c["no_num"])
        eps = 0.001 if group == "existence" else 0.0001
        return {
            "Accuracy": rate(c["correct_score"], c["correct_num"]),
            "Precision": precision,
            "Recall": recall,
            "F1": f1_score(precision, recall, eps),
        }

    def answer_counts(self, group: str) -> dict[str, int]:
        """Plain integer counts of a group (the counters less their 0.001 starting values)."""
        groups = ATTRIBUTE_GROUPS if group == "attribute" else (group,)
        out = {"responses": 0, "not_yes_no": 0, "correct": 0, "truth_no": 0, "answered_no": 0,
               "answered_no_correct": 0}  # fmt: skip
        for g in groups:
            c = self.answers[g]
            out["responses"] += self.n_answers[g]
            out["not_yes_no"] += self.not_yes_no[g]
            out["correct"] += int(c["correct_score"])
            out["truth_no"] += round(c["no_num"] - 0.001)
            out["answered_no"] += round(c["ans_no_num"] - 0.001)
            out["answered_no_correct"] += int(c["ans_no_score"])
        return out

    def generative_counts(self) -> dict[str, int]:
        g = self.generative
        return {
            "responses": self.n_descriptions,
            "mentions": round(g["chair_num"] - 0.001),
            "hallucinated_mentions": int(g["chair_score"]),
            "truth_objects": round(g["safe_cover_num"] - 0.001),
            "covered_truth_objects": int(g["safe_cover_score"]),
            "hallu_objects": round(g["hallu_cover_num"] - 0.001),
            "mentioned_hallu_objects": int(g["hallu_cover_score"]),
            "hallucinating_responses": self.n_descriptions - int(g["non_hallu_score"]),
        }


def amber_score(chair: float, f1: float) -> float:
    """The paper's AMBER score: (100 - CHAIR + F1) / 2, rounded to one decimal."""
    return round((100 - chair + f1) / 2, 1)

