"""The built-in NLP backend (tokeniser, lemmatiser, tagger), similarity sources and the official backend's
error when NLTK/spaCy are missing."""

from __future__ import annotations

import json

import pytest

from clipdpo_cli.eval.amber.nlp.builtin import BuiltinNouns, NounLemmatizer, word_tokenize
from clipdpo_cli.eval.amber.nlp.similarity import (
    TABLE_FORMAT,
    ExactSimilarity,
    SpacySimilarity,
    TableSimilarity,
    build_table,
)
from clipdpo_cli.eval.amber.run import load_nlp
from clipdpo_cli.eval.amber.table import build_similarity_file
from clipdpo_cli.io.errors import InputError, UsageError


def test_amber_tokenizer_like_nltk():
    text = "A dog's bowl (red) sits on the e-book, next to \"cups\" and air-conditioning. It is 3.5 m wide!"
    assert word_tokenize(text) == [
        "A", "dog", "'s", "bowl", "(", "red", ")", "sits", "on", "the", "e-book", ",", "next", "to", '"',
        "cups", '"', "and", "air-conditioning", ".", "It", "is", "3.5", "m", "wide", "!",
    ]  # fmt: skip
    assert word_tokenize("cup/mug, dogs' toys") == ["cup/mug", ",", "dogs", "'", "toys"]


@pytest.fixture(scope="module")
def lemmatizer(amber_data):
    return NounLemmatizer(amber_data.vocabulary_set)


@pytest.mark.parametrize(
    ("word", "lemma"),
    [
        ("dogs", "dog"), ("buses", "bus"), ("busses", "bus"), ("glasses", "glass"), ("boxes", "box"),
        ("benches", "bench"), ("bushes", "bush"), ("cherries", "cherry"), ("knives", "knife"),
        ("shelves", "shelf"), ("men", "man"), ("women", "woman"), ("snowmen", "snowman"),
        ("children", "child"), ("mice", "mouse"), ("geese", "goose"), ("potatoes", "potato"),
        ("people", "people"), ("sheep", "sheep"), ("bus", "bus"), ("grass", "grass"), ("tennis", "tennis"),
        ("leaves", "leaf"),  # not the vocabulary's "leave"
        ("sunglasses", "sunglass"), ("chopsticks", "chopstick"), ("earrings", "earring"),  # shorter lemma
        ("TV", "TV"), ("TVs", "TVs"), ("Dogs", "Dogs"),  # WordNet is lower-case: capitalised words stay
    ],
)  # fmt: skip
def test_amber_lemmatizer(lemmatizer, word, lemma):
    assert lemmatizer.lemmatize(word) == lemma


@pytest.mark.parametrize(
    ("text", "nouns"),
    [
        ("A can of soda and a trash can.", ["can", "can"]),
        ("You can see a dog.", ["dog"]),
        ("A white dove. The bird dove into the water.", ["dove", "bird", "water"]),
        ("A man wearing an orange shirt eats an orange.", ["man", "shirt", "orange"]),
        ("The sky is orange and the light is on.", ["sky", "light"]),
        ("A light hangs from the ceiling above a light blue sofa.", ["light", "ceiling", "sofa"]),
        ("A man painting a wall next to a painting.", ["man", "wall", "painting"]),
        ("Two people watch the boats. She watches TV.", ["people", "boat", "TV"]),
        ("They want to ski down the hill on skis.", ["hill", "ski"]),
        ("Dogs and cats.", ["cat"]),  # sentence-initial capital: not lemmatised, not in the vocabulary
    ],
)
def test_amber_builtin_nouns(amber_data, text, nouns):
    vocab = amber_data.vocabulary_set
    extracted = BuiltinNouns(vocab).nouns(text)
    assert extracted == [n for n in nouns if n in vocab]


def test_amber_exact_similarity_is_identity():
    s = ExactSimilarity(0.8)
    assert s.similar("dog", "dog") and not s.similar("dog", "puppy")
    assert not ExactSimilarity(1.0).similar("dog", "dog")  # spaCy gives 1.0, and the test is "> threshold"


class FakeDoc:
    def __init__(self, text, vectors):
        self.text, self.vectors = text, vectors

    def similarity(self, other):
        if self.text == other.text:
            return 1.0
        return self.vectors.get(frozenset((self.text, other.text)), 0.1)


class FakeSpacy:
    meta = {"name": "en_core_web_lg", "version": "9.9.9", "lang": "en"}

    def __init__(self, vectors):
        self.vectors = vectors
        self.calls = 0

    def __call__(self, text):
        self.calls += 1
        return FakeDoc(text, self.vectors)


def test_amber_similarity_table_round_trip(tmp_path, tiny_amber):
    fake = FakeSpacy({frozenset(("dog", "puppy")): 0.83, frozenset(("cat", "puppy")): 0.6,
                      frozenset(("car", "road")): 0.3})  # fmt: skip
    path = tmp_path / "sim.json"
    table = build_similarity_file(tiny_amber, str(path), quiet=True, nlp=fake)
    assert table["format"] == TABLE_FORMAT and table["source"] == "spacy en_core_web_lg 9.9.9"
    assert table["pairs"] == [["cat", "puppy", 0.6], ["dog", "puppy", 0.83]]  # >= 0.5 only, sorted
    loaded = TableSimilarity(str(path), 0.8)
    assert loaded.similar("puppy", "dog") and loaded.similar("dog", "dog")
    assert not loaded.similar("cat", "puppy") and not loaded.similar("car", "road")
    assert TableSimilarity(str(path), 0.55).similar("cat", "puppy")
    with pytest.raises(UsageError, match="min_similarity"):
        TableSimilarity(str(path), 0.4)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"pairs": []}))
    with pytest.raises(InputError, match="not a similarity table"):
        TableSimilarity(str(bad))


def test_amber_spacy_similarity_caches_docs_and_pairs():
    fake = FakeSpacy({frozenset(("dog", "puppy")): 0.9})
    s = SpacySimilarity(0.8, nlp=fake)
    assert s.similar("dog", "puppy") and s.similar("dog", "puppy") and not s.similar("dog", "cat")
    assert fake.calls == 3  # one Doc per word
    assert build_table(["b", "a", "a"], lambda x, y: 0.7, "test")["pairs"] == [["a", "b", 0.7]]


def test_amber_official_backend_names_what_is_missing(amber_data):
    try:
        import nltk  # noqa: F401
        import spacy  # noqa: F401

        pytest.skip("NLTK and spaCy are installed here")
    except ImportError:
        pass
    with pytest.raises(InputError) as err:
        load_nlp("official", None, 0.8, amber_data)
    message = str(err.value)
    assert "NLTK" in message and "spaCy" in message  # one line naming all that is missing


def _fake_nltk(monkeypatch, missing=(), version=None):
    """A stand-in `nltk` module: its data lookups, tokenizer, tagger and lemmatizer."""
    import sys
    import types

    nltk = types.ModuleType("nltk")
    stem = types.ModuleType("nltk.stem")
    if version is not None:
        nltk.__version__ = version

    def find(path):
        if any(name in path for name in missing):
            raise LookupError(path)
        return path

    nltk.data = types.SimpleNamespace(find=find)
    nltk.word_tokenize = lambda text: text.replace(".", " .").split()
    tags = {"Dogs": "NNP", "run": "VBP", "orange": "JJ", "trees": "NNS", "under": "IN", ".": "."}
    nltk.pos_tag = lambda tokens: [(t, tags.get(t, "NN")) for t in tokens]

    class WordNetLemmatizer:
        def lemmatize(self, word, pos="n"):
            return word[:-1] if word.endswith("s") and word.islower() else word

    stem.WordNetLemmatizer = WordNetLemmatizer
    nltk.stem = stem
    monkeypatch.setitem(sys.modules, "nltk", nltk)
    monkeypatch.setitem(sys.modules, "nltk.stem", stem)


def test_amber_official_nouns_wiring(monkeypatch):
    from clipdpo_cli.eval.amber.nlp.official import OfficialNouns

    _fake_nltk(monkeypatch)
    # NN* tokens, lemmatised, case kept; JJ/VBP/punctuation dropped
    assert OfficialNouns().nouns("Dogs run under orange trees.") == ["Dogs", "tree"]


def test_amber_official_nouns_names_missing_data(monkeypatch):
    from clipdpo_cli.eval.amber.nlp.official import OfficialNouns

    _fake_nltk(monkeypatch, missing=("wordnet", "averaged_perceptron_tagger"), version="3.8.1")
    with pytest.raises(InputError) as err:
        OfficialNouns()
    assert "NLTK data not installed: averaged_perceptron_tagger, wordnet" in str(err.value)
    assert "python -m nltk.downloader averaged_perceptron_tagger wordnet" in str(err.value)


@pytest.mark.parametrize(
    ("version", "needed"),
    [
        ("3.8.1", ["punkt", "averaged_perceptron_tagger", "wordnet"]),
        ("3.9", ["punkt_tab", "averaged_perceptron_tagger_eng", "wordnet"]),
        ("3.9.1", ["punkt_tab", "averaged_perceptron_tagger_eng", "wordnet"]),
        ("3.10.0rc1", ["punkt_tab", "averaged_perceptron_tagger_eng", "wordnet"]),
        (None, ["punkt_tab", "averaged_perceptron_tagger_eng", "wordnet"]),  # unknown: a current release
    ],
)
def test_amber_nltk_resources_by_version(version, needed):
    from clipdpo_cli.eval.amber.nlp.official import nltk_resources

    assert list(nltk_resources(version)) == needed


def test_amber_official_nouns_legacy_data_is_not_enough_on_nltk_39(monkeypatch):
    """NLTK 3.9 with only the old punkt / averaged_perceptron_tagger folders: named before any scoring."""
    from clipdpo_cli.eval.amber.nlp.official import OfficialNouns

    _fake_nltk(monkeypatch, missing=("punkt_tab", "averaged_perceptron_tagger_eng"), version="3.9.1")
    with pytest.raises(InputError) as err:
        OfficialNouns()
    message = str(err.value)
    assert "NLTK data not installed: punkt_tab, averaged_perceptron_tagger_eng (" in message
    assert "python -m nltk.downloader punkt_tab averaged_perceptron_tagger_eng)" in message


def test_amber_official_nouns_lookup_error_while_scoring_is_one_line(monkeypatch):
    import sys

    from clipdpo_cli.eval.amber.nlp.official import OfficialNouns

    _fake_nltk(monkeypatch, version="3.9.1")
    nouns = OfficialNouns()

    def word_tokenize(text):
        raise LookupError("Resource punkt_tab not found.\n  >>> nltk.download('punkt_tab')")

    monkeypatch.setattr(sys.modules["nltk"], "word_tokenize", word_tokenize)
    with pytest.raises(InputError, match=r"not installed: punkt_tab .*nltk\.downloader punkt_tab\)"):
        nouns.nouns("A dog.")
