"""Generative scoring: hand-computed cases for each quirk of the official counting."""

from __future__ import annotations

from clipdpo_cli.eval.amber.data import load_amber
from clipdpo_cli.eval.amber.evaluate import score_responses
from clipdpo_cli.eval.amber.nlp.builtin import BuiltinNouns
from clipdpo_cli.eval.amber.nlp.similarity import ExactSimilarity
from clipdpo_cli.eval.amber.scorer import AmberCounters, DescriptionCounts, score_description

ASSOCIATION = {
    "dog": ["puppy", "leash"],
    "cat": ["puppy", "kitten"],
    "tree": ["grass"],
    "car": ["road", "wheel"],
    "bird": [],
}
VOCAB = frozenset(["dog", "puppy", "leash", "cat", "kitten", "tree", "grass", "car", "road", "wheel", "bird",
                   "orange"])  # fmt: skip
SAFE = ["orange", "light"]


def exact(a: str, b: str) -> bool:
    return a == b


def count(nouns, truth, hallu, similar=exact) -> DescriptionCounts:
    return score_description(nouns, truth, hallu, ASSOCIATION, VOCAB, SAFE, similar)


def test_amber_association_word_credits_first_owner_only():
    # "puppy" is associated with both truth words: only the first (dog) is credited
    c = count(["puppy"], ["dog", "cat"], ["car"])
    assert c.truth_covered == [1, 0] and c.hallucinated == [False]


def test_amber_duplicate_truth_word_never_fully_covered():
    c = count(["tree", "tree"], ["tree", "tree"], [])
    assert c.truth_covered == [1, 0]
    counters = AmberCounters()
    counters.add_description(c)
    assert counters.generative_metrics()["Cover"] == round(1 / 2.001 * 100, 1) == 50.0


def test_amber_hallu_word_credits_cog_and_is_still_a_hallucination():
    c = count(["car"], ["dog"], ["car"])
    assert c.hallu_covered == [1] and c.hallucinated == [True]
    # a word associated with a hallu word: same
    c = count(["wheel"], ["dog"], ["bird", "car"])
    assert c.hallu_covered == [0, 1] and c.hallucinated == [True]


def test_amber_truth_match_wins_over_hallu_match():
    # "puppy" is associated with the truth word dog and the hallu word cat: safe first, Cog not credited
    c = count(["puppy"], ["dog"], ["cat"])
    assert c.truth_covered == [1] and c.hallu_covered == [0] and c.hallucinated == [False]


def test_amber_global_safe_words_count_in_chair_denominator_only():
    c = count(["orange", "dog", "car"], ["dog"], ["car"])
    assert c.mentions == ["orange", "dog", "car"]
    assert c.hallucinated == [False, False, True]
    counters = AmberCounters()
    counters.add_description(c)
    assert counters.generative_metrics()["CHAIR"] == round(1 / 3.001 * 100, 1) == 33.3


def test_amber_words_outside_vocabulary_and_empty_responses():
    c = count(["zebra", "Dog"], ["dog"], ["car"])  # not in the vocabulary (case-sensitive)
    assert c.mentions == [] and c.truth_covered == [0]
    counters = AmberCounters()
    counters.add_description(count([], ["dog"], ["car"]))
    counters.add_description(count(["car"], ["dog"], ["car"]))
    m = counters.generative_metrics()
    assert m["Hal"] == round(100 - 1 / 2.001 * 100, 1) == 50.0
    assert m["CHAIR"] == round(1 / 1.001 * 100, 1)
    assert m["Cover"] == 0.0 and m["Cog"] == round(1 / 2.001 * 100, 1)


def test_amber_similarity_credits_first_similar_words():
    table = {frozenset(("kitten", "wheel")): 0.9, frozenset(("kitten", "puppy")): 0.85}

    def similar(a, b):
        return a == b or table.get(frozenset((a, b)), 0.0) > 0.8

    # exact hallu match (kitten -> cat), then the first similar hallu candidate (wheel -> car), then the
    # first similar safe candidate (puppy -> dog): covered, so not a hallucination
    c = count(["kitten"], ["dog"], ["car", "cat"], similar)
    assert c.hallu_covered == [1, 1]
    assert c.truth_covered == [1]
    assert c.hallucinated == [False]
    assert count(["kitten"], ["dog"], ["car", "cat"]).hallucinated == [True]  # exact similarity only


def test_amber_description_end_to_end_by_hand(tiny_amber):
    """Image 1 of the stand-in benchmark: truth dog tree grass sky, hallu cat car bird."""
    data = load_amber(tiny_amber)
    text = "A dog sits on the grass under a tree next to a cat and an orange. A puppy plays."
    nouns = BuiltinNouns(data.vocabulary_set)
    assert nouns.nouns(text) == ["dog", "grass", "tree", "cat", "orange", "puppy"]
    result = score_responses(data, [{"id": 1, "response": text}], "generative", nouns, ExactSimilarity())
    g = result["generative"]
    # "grass" is first found among tree's associated words, so it credits tree, not grass
    assert g["counts"]["covered_truth_objects"] == 2 and g["counts"]["mentions"] == 6
    assert (g["CHAIR"], g["Cover"], g["Hal"], g["Cog"]) == (
        round(1 / 6.001 * 100, 1), round(2 / 4.001 * 100, 1), round(100 - 0 / 1.001 * 100, 1),
        round(1 / 3.001 * 100, 1),
    )  # fmt: skip
    assert (g["CHAIR"], g["Cover"], g["Hal"], g["Cog"]) == (16.7, 50.0, 100.0, 33.3)
    assert result["responses"]["missing"] == 2 and result["complete"] is False


def test_amber_generative_on_real_annotations(amber_data):
    """Id 1 of the real benchmark: truth sky forest grass person lake mountain road."""
    truth, hallu = amber_data.annotations[1]["truth"], amber_data.annotations[1]["hallu"]
    text = "A person stands by a lake under the sky. There is a dog and a cat."
    result = score_responses(
        amber_data, [{"id": 1, "response": text}], "generative", BuiltinNouns(amber_data.vocabulary_set),
        ExactSimilarity(),
    )  # fmt: skip
    g = result["generative"]
    assert "dog" in hallu and "cat" not in truth + hallu
    counts = score_description(["person", "lake", "sky", "dog", "cat"], truth, hallu, amber_data.association,
                               amber_data.vocabulary_set, amber_data.safe_words, exact)  # fmt: skip
    assert g["counts"]["mentions"] == 5
    assert g["counts"]["hallucinated_mentions"] == counts.n_hallucinated == 2
    assert g["CHAIR"] == round(2 / 5.001 * 100, 1)
    assert g["Hal"] == 100.0
