"""Building the word-similarity table file from spaCy (`eval-amber --build-similarity-table FILE`)."""

from __future__ import annotations

from typing import Any

from clipdpo_cli.eval.amber.data import load_amber
from clipdpo_cli.eval.amber.nlp.similarity import SPACY_MODEL, SpacySimilarity, build_table, write_table
from clipdpo_cli.io.log import info


def build_similarity_file(amber_root: str, path: str, quiet: bool = False, nlp: Any = None) -> dict[str, Any]:
    """Similarities (>= 0.5) between all pairs of the benchmark's object words, by spaCy en_core_web_lg
    exactly as the official scorer computes them; written to `path`."""
    data = load_amber(amber_root)
    spacy_sim = SpacySimilarity(nlp=nlp)
    meta = getattr(spacy_sim.nlp, "meta", {}) or {}
    source = f"spacy {meta.get('lang', 'en')}_{meta.get('name', SPACY_MODEL)} {meta.get('version', '?')}"
    if meta.get("name", "").startswith("en_"):
        source = f"spacy {meta['name']} {meta.get('version', '?')}"
    table = build_table(data.vocabulary, spacy_sim.similarity, source)
    write_table(table, path)
    info(
        "eval-amber",
        f"{len(table['pairs']):,} word pairs with similarity >= "
        f"{table['min_similarity']} among {len(table['words'])} words written to {path}",
        quiet,
    )
    return table
