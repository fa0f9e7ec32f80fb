"""The official scorer's noun extraction: NLTK word_tokenize, pos_tag (NN*), WordNetLemmatizer."""

from __future__ import annotations

import re
from typing import Any

from clipdpo_cli.io.errors import InputError

# NLTK data each release reads: download name -> paths for nltk.data.find (any one is enough). NLTK 3.9
# replaced the pickled punkt and averaged_perceptron_tagger by punkt_tab and averaged_perceptron_tagger_eng,
# and reads only the new ones: the old folders do not help it.
NEW_NLTK = (3, 9)
NLTK_RESOURCES_NEW = {
    "punkt_tab": ("tokenizers/punkt_tab",),
    "averaged_perceptron_tagger_eng": ("taggers/averaged_perceptron_tagger_eng",),
    "wordnet": ("corpora/wordnet", "corpora/wordnet.zip"),
}
NLTK_RESOURCES_OLD = {
    "punkt": ("tokenizers/punkt",),
    "averaged_perceptron_tagger": ("taggers/averaged_perceptron_tagger",),
    "wordnet": ("corpora/wordnet", "corpora/wordnet.zip"),
}


def _version(text: str) -> tuple[int, ...] | None:
    match = re.match(r"\d+(\.\d+)*", text.strip())
    return tuple(int(p) for p in match.group(0).split(".")) if match else None


def nltk_resources(version: str | None) -> dict[str, tuple[str, ...]]:
    """The NLTK data that NLTK `version` needs (an unknown version is taken to be a current one)."""
    parsed = _version(version or "")
    if parsed is not None and parsed < NEW_NLTK:
        return NLTK_RESOURCES_OLD
    return NLTK_RESOURCES_NEW


def _missing_nltk_data(nltk: Any) -> list[str]:
    missing = []
    for name, paths in nltk_resources(getattr(nltk, "__version__", None)).items():
        for path in paths:
            try:
                nltk.data.find(path)
                break
            except LookupError:
                continue
        else:
            missing.append(name)
    return missing


def _data_hint() -> str:
    return ", ".join(NLTK_RESOURCES_NEW) + f" on NLTK >= {'.'.join(map(str, NEW_NLTK))}; " + ", ".join(
        NLTK_RESOURCES_OLD
    ) + " before"


class OfficialNouns:
    """Nouns exactly as the official scorer extracts them (needs NLTK and its data)."""

    name = "official"

    def __init__(self) -> None:
        try:
            import nltk
        except ImportError:
            raise InputError(
                f"--nlp official needs NLTK: pip install nltk (and its data: {_data_hint()}); "
                "or use --nlp builtin"
            ) from None
        missing = _missing_nltk_data(nltk)
        if missing:
            version = getattr(nltk, "__version__", "?")
            raise InputError(
                f"--nlp official: NLTK data not installed: {', '.join(missing)} (the names NLTK {version} "
                f"reads; python -m nltk.downloader {' '.join(missing)}); or use --nlp builtin"
            )
        from nltk.stem import WordNetLemmatizer

        self._nltk = nltk
        self._lemmatizer = WordNetLemmatizer()

    def nouns(self, text: str) -> list[str]:
        try:
            tagged = self._nltk.pos_tag(self._nltk.word_tokenize(text))
            return [self._lemmatizer.lemmatize(word) for word, pos in tagged if pos.startswith("NN")]
        except LookupError as exc:  # data the check above did not foresee: one line, not a traceback
            found = re.search(r"nltk\.download\('([^']+)'\)", str(exc))
            name = found.group(1) if found else "RESOURCE"
            raise InputError(
                f"--nlp official: NLTK data not installed: {name} (the name NLTK "
                f"{getattr(self._nltk, '__version__', '?')} reads; python -m nltk.downloader {name}); "
                "or use --nlp builtin"
            ) from None
