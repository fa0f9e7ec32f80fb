"""What each figure of the pipeline's sections shows (scores, drops, pairs, training), computed from records:
pure functions, no plotting. The benchmark results' tables are benchmarks.py's.

Score histograms are streamed into fine bins (1/20 of a score unit), so any input size takes the same
memory; the figures re-bin them to a readable width. Counts below a threshold are exact (counted while
streaming), not read off the bins.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from math import floor
from typing import Any

from clipdpo_cli.stages.filter import word_count

FINE = 20  # fine bins per score unit: every width in NICE_WIDTHS is a whole number of them
NICE_WIDTHS = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 25.0, 50.0)
MAX_BINS = 48
CATEGORY_ORDER = ("text", "people", "objects", "scenes")
ALL = "all"
_INFINITE = (math.inf, -math.inf)


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool, nor NaN or an infinity)."""
    return (value.__class__ is float or value.__class__ is int) and math.isfinite(value)


def category_order(names: Iterable[str]) -> list[str]:
    """The paper's four categories first (text, people, objects, scenes), then any other, sorted."""
    names = set(names)
    return [c for c in CATEGORY_ORDER if c in names] + sorted(names - set(CATEGORY_ORDER))


@dataclass
class ScoreHistogram:
    """Scores of one field, per image category, in fine bins; `threshold` is the filter's (or None)."""

    field: str
    threshold: float | None = None
    fine: dict[str, dict[int, int]] = field(default_factory=dict)  # category -> fine bin -> records
    below: Counter[str] = field(default_factory=Counter)
    sums: Counter[str] = field(default_factory=Counter)
    missing: int = 0  # records of this kind without a numeric score

    def add(self, category: str, score: Any) -> None:
        """Count one record's score (anything but a finite int or float counts as missing)."""
        kind = score.__class__
        if (kind is not float and kind is not int) or score != score or score in _INFINITE:
            self.missing += 1
            return
        bins = self.fine.get(category)
        if bins is None:
            bins = self.fine[category] = {}
        # + 1e-7: a score that is a multiple of the bin width lands in the bin it starts, also where the
        # product rounds down (1.15 * 20 = 22.999999999999996)
        index = floor(score * FINE + 1e-7)
        bins[index] = bins.get(index, 0) + 1
        self.sums[category] += score
        if self.threshold is not None and score < self.threshold:
            self.below[category] += 1

    def counts(self) -> dict[str, int]:
        """Records per category, in category_order."""
        return {c: sum(self.fine[c].values()) for c in category_order(self.fine)}

    @property
    def total(self) -> int:
        return sum(self.counts().values())

    def mean(self, category: str) -> float:
        return self.sums[category] / sum(self.fine[category].values())

    def auto_width(self) -> float:
        """The smallest width in NICE_WIDTHS that shows the data's range in at most about 2 sqrt(n) bins
        (at least 10, at most MAX_BINS): few records get wide bins, many get fine ones."""
        indices = [i for bins in self.fine.values() for i in bins]
        span = (max(indices) - min(indices) + 1) / FINE if indices else 1.0
        target = min(MAX_BINS, max(10, round(2 * math.sqrt(self.total))))
        return next((w for w in NICE_WIDTHS if span / w <= target), NICE_WIDTHS[-1])

    def binned(self, width: float | None = None) -> tuple[list[float], dict[str, list[int]]]:
        """Bin edges (len = bins + 1) and the count per bin of each category; bins are [a, b)."""
        width = width or self.auto_width()
        step = round(width * FINE)
        if step < 1 or abs(step - width * FINE) > 1e-9:
            raise ValueError(f"bin width {width:g} is not a multiple of {1 / FINE:g}")
        coarse: dict[str, Counter[int]] = {c: Counter() for c in self.fine}  # category -> bin -> records
        for category, bins in self.fine.items():
            for i, n in bins.items():
                coarse[category][i // step] += n
        indices = [i for bins in coarse.values() for i in bins]
        if not indices:
            return [], {}
        lo, hi = min(indices), max(indices)
        edges = [round(i * width, 6) for i in range(lo, hi + 2)]
        counts = {c: [coarse[c][i] for i in range(lo, hi + 1)] for c in category_order(coarse)}
        return edges, counts


@dataclass
class ScoreHistograms:
    """The three score distributions of the filter: captions, questions (kind qa) and their answers."""

    captions: ScoreHistogram
    questions: ScoreHistogram
    answers: ScoreHistogram
    records: int = 0


def score_histograms(
    records: Iterable[dict[str, Any]],
    score_field: str = "clip_score",
    question_score_field: str = "question_score",
    thresholds: dict[str, float | None] | None = None,
) -> ScoreHistograms:
    """Caption scores (`score_field` of non-qa records), question scores (`question_score_field` of qa
    records) and answer scores (`score_field` of qa records), per `category` (ALL when a run has none).

    `thresholds` maps "caption", "question", "answer" to the filter's thresholds (for exact counts below).
    """
    thresholds = thresholds or {}
    out = ScoreHistograms(
        ScoreHistogram(score_field, thresholds.get("caption")),
        ScoreHistogram(question_score_field, thresholds.get("question")),
        ScoreHistogram(score_field, thresholds.get("answer")),
    )
    captions, questions, answers = out.captions.add, out.questions.add, out.answers.add
    n = 0
    for record in records:
        n += 1
        get = record.get
        category = get("category")
        if category.__class__ is not str or not category:
            category = ALL
        if get("kind") == "qa":
            questions(category, get(question_score_field))
            answers(category, get(score_field))
        else:
            captions(category, get(score_field))
    out.records = n
    return out


NO_REASON = "(no reject_reason)"


def drops_per_rule(rejects: Iterable[dict[str, Any]]) -> list[tuple[str, int]]:
    """(reject_reason, records) pairs, most frequent first (ties by reason)."""
    counts = Counter(
        r.get("reject_reason") if isinstance(r.get("reject_reason"), str) else NO_REASON for r in rejects
    )
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


_THRESHOLD_REASONS = {
    "caption": re.compile(r"^caption score < (-?[0-9.eE+-]+)$"),
    "question": re.compile(r"^question score < (-?[0-9.eE+-]+)$"),
    "answer": re.compile(r"^answer score < (-?[0-9.eE+-]+)$"),
}


def thresholds_from_reasons(reasons: Iterable[str]) -> dict[str, float]:
    """The score thresholds that `filter` ("caption score < 28") and `pair` ("answer score < 28") wrote
    into their reject reasons; a rule that dropped nothing left no trace, so it is absent."""
    found: dict[str, float] = {}
    for reason in reasons:
        for kind, pattern in _THRESHOLD_REASONS.items():
            match = pattern.match(reason)
            if match:
                try:
                    found[kind] = float(match.group(1))
                except ValueError:
                    pass
    return found


@dataclass
class PairStats:
    """What the pair figures show: caption-pair margins and lengths, pairs per image, kinds."""

    margins: list[float] = field(default_factory=list)
    chosen_words: list[int] = field(default_factory=list)
    rejected_words: list[int] = field(default_factory=list)
    per_image: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    with_texts: int = 0  # records with a chosen and a rejected text (a file of pairs has only those)

    @property
    def total(self) -> int:
        return sum(self.kinds.values())

    def pairs_per_image(self) -> dict[int, int]:
        """Number of pairs -> number of images with that many, ascending."""
        return dict(sorted(Counter(self.per_image.values()).items()))


def pair_stats(pairs: Iterable[dict[str, Any]]) -> PairStats:
    """Margins (caption pairs with a numeric margin), chosen/rejected word counts of caption pairs
    (the filter's word count), pairs per image and per kind."""
    stats = PairStats()
    for pair in pairs:
        kind = pair.get("kind") if isinstance(pair.get("kind"), str) else "caption"
        stats.kinds[kind] += 1
        stats.per_image[str(pair.get("image"))] += 1
        chosen, rejected = pair.get("chosen"), pair.get("rejected")
        texts = isinstance(chosen, str) and isinstance(rejected, str)
        stats.with_texts += texts
        if kind == "qa":
            continue
        if is_number(pair.get("margin")):
            stats.margins.append(float(pair["margin"]))
        if texts:
            stats.chosen_words.append(word_count(chosen))
            stats.rejected_words.append(word_count(rejected))
    return stats


class ExamplePicker:
    """Keeps, while pairs stream by, the caption pairs of largest margin (one per image) and the first
    QA pairs, for the example cards."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._heap: list[tuple[float, int, dict[str, Any]]] = []  # min-heap of the best margins
        self._images: dict[str, float] = {}
        self._qa: list[dict[str, Any]] = []
        self._seen = 0

    def add(self, pair: dict[str, Any]) -> None:
        self._seen += 1
        if pair.get("kind") == "qa":
            if len(self._qa) < self.n:
                self._qa.append(pair)
            return
        margin = pair.get("margin")
        if not is_number(margin) or not self.n:
            return
        image = str(pair.get("image"))
        if image in self._images and self._images[image] >= margin:
            return
        if image in self._images:  # a better pair of the same image replaces the older one
            self._heap = [e for e in self._heap if str(e[2].get("image")) != image]
            heapq.heapify(self._heap)
        entry = (float(margin), -self._seen, pair)
        if len(self._heap) < self.n:
            heapq.heappush(self._heap, entry)
        elif entry[:2] > self._heap[0][:2]:
            dropped = heapq.heapreplace(self._heap, entry)
            self._images.pop(str(dropped[2].get("image")), None)
        else:
            return
        self._images[image] = float(margin)

    def picked(self) -> list[dict[str, Any]]:
        """Up to n pairs: caption pairs by margin (largest first), a quarter of the places (at least one)
        given to QA pairs when there are any; a kind with too few leaves its places to the other."""
        captions = [e[2] for e in sorted(self._heap, key=lambda e: (-e[0], -e[1]))]
        qa_places = min(len(self._qa), max(1, self.n // 4)) if self._qa else 0
        take_captions = min(len(captions), self.n - qa_places)
        take_qa = min(len(self._qa), self.n - take_captions)
        return captions[:take_captions] + self._qa[:take_qa]


TRAIN_METRICS = ("loss", "rewards/margins", "rewards/accuracies")


def training_series(
    history: Sequence[dict[str, Any]], keys: Sequence[str] = TRAIN_METRICS
) -> dict[str, tuple[list[float], list[float]]]:
    """For each key logged at least once: (steps, values) from a Trainer `log_history`, in step order.

    Only entries with a numeric `step` count; the run's closing entry (train_runtime, train_loss) counts
    for the keys it carries (TRL logs its last metrics there when fewer steps than the logging interval
    ran), never as `loss` (train_loss is the run's mean, not a step's value)."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for key in keys:
        points = sorted(
            (h["step"], h[key]) for h in history if is_number(h.get("step")) and is_number(h.get(key))
        )
        if points:
            series[key] = ([float(s) for s, _ in points], [float(v) for _, v in points])
    return series
