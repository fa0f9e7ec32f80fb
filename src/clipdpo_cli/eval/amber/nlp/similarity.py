"""Word similarity for AMBER scoring: only ever asked between two of the benchmark's object words.

The official scorer compares spaCy en_core_web_lg vectors (`nlp(a).similarity(nlp(b)) > 0.8`), which
returns 1.0 for identical strings. Three sources, all cached per pair:
- `ExactSimilarity`: identical strings only (no vectors needed; the built-in default);
- `TableSimilarity`: a precomputed table file (JSON, written by `build_table`);
- `SpacySimilarity`: spaCy's vectors, live.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.io.jsonfile import write_json

TABLE_FORMAT = "clipdpo-amber-similarity/1"
SPACY_MODEL = "en_core_web_lg"


class ExactSimilarity:
    """Similarity 1.0 for identical words and 0.0 otherwise (what spaCy gives identical strings)."""

    name = "exact"

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold

    def similarity(self, a: str, b: str) -> float:
        return 1.0 if a == b else 0.0

    def similar(self, a: str, b: str) -> bool:
        return a == b and self.threshold < 1.0


class _CachedSimilarity:
    name = "cached"

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._cache: dict[tuple[str, str], bool] = {}

    def similarity(self, a: str, b: str) -> float:
        raise NotImplementedError

    def similar(self, a: str, b: str) -> bool:
        key = (a, b)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self.similarity(a, b) > self.threshold
        return hit


class TableSimilarity(_CachedSimilarity):
    """Similarities read from a table file; pairs absent from it are below its `min_similarity`."""

    def __init__(self, path: str, threshold: float = 0.8) -> None:
        super().__init__(threshold)
        table = read_table(path)
        self.path = path
        self.source = table.get("source", "?")
        self.floor = float(table.get("min_similarity", 0.0))
        if threshold < self.floor:
            raise UsageError(
                f"--similarity-threshold {threshold} is below the table's min_similarity {self.floor} "
                f"({path} leaves out pairs under it)"
            )
        self.pairs: dict[tuple[str, str], float] = {}
        for a, b, value in table["pairs"]:
            self.pairs[(a, b)] = self.pairs[(b, a)] = float(value)
        self.name = f"table:{path}"

    def similarity(self, a: str, b: str) -> float:
        if a == b:
            return 1.0
        return self.pairs.get((a, b), 0.0)


class SpacySimilarity(_CachedSimilarity):
    """spaCy's Doc.similarity, exactly as the official scorer calls it."""

    def __init__(self, threshold: float = 0.8, nlp: Any = None) -> None:
        super().__init__(threshold)
        self.nlp = nlp if nlp is not None else load_spacy()
        self._docs: dict[str, Any] = {}
        self.name = f"spacy:{getattr(self.nlp, 'meta', {}).get('name', SPACY_MODEL)}"

    def _doc(self, word: str) -> Any:
        doc = self._docs.get(word)
        if doc is None:
            doc = self._docs[word] = self.nlp(word)
        return doc

    def similarity(self, a: str, b: str) -> float:
        return float(self._doc(a).similarity(self._doc(b)))


def load_spacy(model: str = SPACY_MODEL) -> Any:
    """spaCy with the vectors model the official scorer uses, or InputError saying what is missing."""
    import warnings

    try:
        import spacy
    except ImportError:
        raise InputError(
            f"spaCy is not installed (needed for word similarity as the official scorer): "
            f"pip install spacy && python -m spacy download {model}"
        ) from None
    try:
        nlp = spacy.load(model)
    except OSError:
        raise InputError(
            f"the spaCy model {model} is not installed: python -m spacy download {model}"
        ) from None
    warnings.filterwarnings("ignore", category=UserWarning)  # as the official scorer (W008 on no vector)
    return nlp


def read_table(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            table = json.load(fh)
    except FileNotFoundError:
        raise InputError(f"similarity table not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read similarity table {path}: {exc}") from None
    if not isinstance(table, dict) or table.get("format") != TABLE_FORMAT or "pairs" not in table:
        raise InputError(
            f"{path} is not a similarity table ({TABLE_FORMAT}); build one with --build-similarity-table"
        )
    return table


def build_table(
    words: Iterable[str],
    similarity: Callable[[str, str], float],
    source: str,
    min_similarity: float = 0.5,
) -> dict[str, Any]:
    """All pairs of distinct words whose similarity is at least `min_similarity`."""
    unique = sorted(set(words))
    pairs = []
    for i, a in enumerate(unique):
        for b in unique[i + 1 :]:
            value = similarity(a, b)
            if value >= min_similarity:
                pairs.append([a, b, round(float(value), 6)])
    return {
        "format": TABLE_FORMAT,
        "source": source,
        "min_similarity": min_similarity,
        "words": unique,
        "pairs": pairs,
    }


def write_table(table: dict[str, Any], path: str) -> None:
    write_json(table, path, indent=0)


def load_similarity(backend: str, table: str | None, threshold: float) -> Any:
    """The similarity source: a table file when given, else spaCy for `official`, else exact matching."""
    if table:
        return TableSimilarity(table, threshold)
    if backend == "official":
        return SpacySimilarity(threshold)
    return ExactSimilarity(threshold)
