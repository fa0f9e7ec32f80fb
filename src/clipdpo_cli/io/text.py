"""Splitting a text into the parts a scorer reads one by one: sentences, or clauses of them.

`sentences` is the one sentence split of the project (eval's built-in noun extractor and `score
--per-sentence` use it): at . ! ? followed by white space, as NLTK's punkt splits when the word before is
no abbreviation. `clauses` cuts each sentence further at , ; : and the word "and", a word-level heuristic
(it cuts "black and white" too) for captions that list objects in one sentence.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+")
_CLAUSE_BREAK = re.compile(r"\s*[,;:]\s+|\s+and\s+", re.IGNORECASE)


def sentences(text: str) -> list[str]:
    """Split at . ! ? followed by white space (punkt splits there unless the word is an abbreviation)."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def clauses(text: str) -> list[str]:
    """Each sentence cut further at , ; : followed by white space and at the word 'and' (no empty part)."""
    return [c.strip() for s in sentences(text) for c in _CLAUSE_BREAK.split(s) if c.strip()]
