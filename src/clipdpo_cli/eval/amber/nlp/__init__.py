"""Pluggable NLP for AMBER scoring: noun extraction (tokenise, POS-tag, lemmatise) and word similarity.

- `builtin`: no downloads; a tokeniser modelled on NLTK's, a rule-based noun tagger for the benchmark's
  object vocabulary, WordNet's noun lemmatisation rules with the relevant exceptions, and similarity by
  identity (or a precomputed table). Its known differences from `official` are listed in docs/amber.md.
- `official`: NLTK (punkt, averaged perceptron tagger, WordNet) and spaCy's en_core_web_lg, exactly as the
  benchmark's own scorer.
"""

from __future__ import annotations

from typing import Protocol


class NounExtractor(Protocol):
    name: str

    def nouns(self, text: str) -> list[str]:
        """Lemmatised tokens tagged as nouns (NN*), in order, case kept."""
        ...


BACKENDS = ("builtin", "official")


def load_nouns(name: str, vocabulary: frozenset[str]) -> NounExtractor:
    """The noun extractor of a backend (`official` raises InputError naming what is not installed)."""
    if name == "builtin":
        from clipdpo_cli.eval.amber.nlp.builtin import BuiltinNouns

        return BuiltinNouns(vocabulary)
    if name == "official":
        from clipdpo_cli.eval.amber.nlp.official import OfficialNouns

        return OfficialNouns()
    from clipdpo_cli.io.errors import UsageError

    raise UsageError(f"--nlp must be one of {', '.join(BACKENDS)}, got '{name}'")
