"""Helpers shared by the AMBER tests: where the real annotation files are, and the CLI in a subprocess."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.conftest import run_text_cli as run_cli  # noqa: F401 - shared by the tests here

REPO = Path(__file__).resolve().parents[3]


def shared_amber_dir() -> Path | None:
    """../shared/amber beside the repository (a CI clone), or two levels up (a git worktree)."""
    for base in (REPO.parent, REPO.parent.parent):
        path = base / "shared" / "amber"
        if (path / "annotations.json").is_file():
            return path
    return None


def running_in_ci(env: Mapping[str, str] | None = None) -> bool:
    """CI=true (GitHub Actions, GitLab, ... set it): missing test data is then an error, not a skip."""
    return (os.environ if env is None else env).get("CI", "").strip().lower() in ("true", "1", "yes")


def require_shared_amber(env: Mapping[str, str] | None = None) -> Path:
    """The real AMBER annotation files; missing, the test is skipped locally but FAILS in CI."""
    path = shared_amber_dir()
    if path is not None:
        return path
    message = "AMBER annotation files (../shared/amber) not available"
    if running_in_ci(env):
        pytest.fail(f"{message}: CI=true, so the AMBER tests must run (check out ../shared/amber)")
    pytest.skip(message)


FAKE_NLTK = '''"""A stand-in for nltk {version}: data looked up in NLTK_DATA (as nltk.data.find does), a
whitespace tokenizer, a tagger calling every word a noun and a lemmatizer dropping a plural s."""
import os
import types

__version__ = "{version}"


def _find(resource):
    for root in os.environ.get("NLTK_DATA", "").split(os.pathsep):
        if root and os.path.exists(os.path.join(root, resource)):
            return os.path.join(root, resource)
    name = resource.strip("/").split("/")[1]
    raise LookupError(f"Resource {{name}} not found.\\n  >>> import nltk\\n  >>> nltk.download('{{name}}')")


data = types.SimpleNamespace(find=_find)


def word_tokenize(text):
    _find("{punkt}")
    return text.replace(".", " .").split()


def pos_tag(tokens):
    _find("{tagger}")
    return [(t, "NN" if t.isalpha() else ".") for t in tokens]
'''

FAKE_NLTK_STEM = '''class WordNetLemmatizer:
    def lemmatize(self, word, pos="n"):
        return word[:-1] if word.endswith("s") and word.islower() else word
'''


def fake_nltk_package(site: Path, version: str) -> Path:
    """A folder to put on PYTHONPATH holding a stand-in `nltk` package of `version`, whose tokenizer and
    tagger need the data that release reads (punkt_tab / averaged_perceptron_tagger_eng from 3.9)."""
    new = tuple(int(p) for p in version.split(".")[:2]) >= (3, 9)
    punkt = "tokenizers/punkt_tab/english/" if new else "tokenizers/punkt/english.pickle"
    tagger = "taggers/averaged_perceptron_tagger_eng/" if new else "taggers/averaged_perceptron_tagger/"
    package = site / "nltk"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_NLTK.format(version=version, punkt=punkt, tagger=tagger))
    (package / "stem.py").write_text(FAKE_NLTK_STEM)
    return site
