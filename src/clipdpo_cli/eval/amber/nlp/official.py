"""The official scorer's noun extraction: NLTK word_tokenize, pos_tag (NN*), WordNetLemmatizer."""

from __future__ import annotations

from typing import Any

from clipdpo_cli.io.errors import InputError

# NLTK resources, under the names of older and newer NLTK releases (either one is enough).
NLTK_RESOURCES = {
    "punkt": ("tokenizers/punkt_tab", "tokenizers/punkt"),
    "averaged_perceptron_tagger": (
        "taggers/averaged_perceptron_tagger_eng",
        "taggers/averaged_perceptron_tagger",
    ),
    "wordnet": ("corpora/wordnet", "corpora/wordnet.zip"),
}


def _missing_nltk_data(nltk: Any) -> list[str]:
    missing = []
    for name, paths in NLTK_RESOURCES.items():
        for path in paths:
            try:
                nltk.data.find(path)
                break
            except LookupError:
                continue
        else:
            missing.append(name)
    return missing


class OfficialNouns:
    """Nouns exactly as the official scorer extracts them (needs NLTK and its data)."""

    name = "official"

    def __init__(self) -> None:
        try:
            import nltk
        except ImportError:
            raise InputError(
                "--nlp official needs NLTK: pip install nltk (and its data: punkt, "
                "averaged_perceptron_tagger, wordnet); or use --nlp builtin"
            ) from None
        missing = _missing_nltk_data(nltk)
        if missing:
            raise InputError(
                "--nlp official: NLTK data not installed: "
                + ", ".join(missing)
                + f" (python -m nltk.downloader {' '.join(missing)}); or use --nlp builtin"
            )
        from nltk.stem import WordNetLemmatizer

        self._nltk = nltk
        self._lemmatizer = WordNetLemmatizer()

    def nouns(self, text: str) -> list[str]:
        tagged = self._nltk.pos_tag(self._nltk.word_tokenize(text))
        return [self._lemmatizer.lemmatize(word) for word, pos in tagged if pos.startswith("NN")]
