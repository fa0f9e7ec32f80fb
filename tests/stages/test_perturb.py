"""`perturb --method rules`: each rule by hand, one change per variant, determinism, ids, counting, CLI."""

from __future__ import annotations

import difflib
import json
import random
import re

import pytest

from clipdpo_cli.io.errors import InputError, RecordFailure, UsageError
from clipdpo_cli.io.records import make_id
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.stages.perturb import (
    COLORS,
    NUMBER_WORDS,
    TYPES,
    PerturbSettings,
    add_object,
    change_attribute,
    mentions,
    parse_types,
    perturb_records,
    read_objects,
    rule_rng,
    rule_variant,
    swap_relation,
)
from tests.conftest import invoke_cli


class FirstRng(random.Random):
    """Always picks the first candidate, so a rule's result can be worked out by hand."""

    def choice(self, seq):  # type: ignore[override]
        return seq[0]


def rec(rid: str, text: str, **extra) -> dict:
    return {"id": rid, "image": f"{rid}.jpg", "text": text, **extra}


def run(records, ctx=None, **settings):
    ctx = ctx or StageContext("perturb")
    return list(perturb_records(iter(records), PerturbSettings(**settings), ctx)), ctx


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def changes(before: str, after: str) -> list[tuple[str, list[str], list[str]]]:
    """The non-equal difflib opcodes between the two word lists: (tag, old words, new words)."""
    a, b = words(before), words(after)
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    return [(tag, a[i1:i2], b[j1:j2]) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


# --- the rules, by hand ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("The cat is under the table.", "The cat is on the table."),
        ("A lamp in front of a window", "A lamp behind a window"),
        ("A dog behind the fence.", "A dog in front of the fence."),
        ("On top of the car sits a cat.", "Underneath the car sits a cat."),
        ("A cup next to a plate.", "A cup far from a plate."),
        ("A man to the LEFT of a tree.", "A man to the RIGHT of a tree."),
        ("The onion lies beside the bottle.", "The onion lies far from the bottle."),  # not "on"ion
        ("A bird above the lake.", "A bird below the lake."),
        ("Kids playing outside.", "Kids playing inside."),
    ],
)
def test_relation_swaps_one_phrase_whole_words_case_kept(caption, expected):
    assert swap_relation(caption, random.Random(0)) == expected


def test_relation_absent():
    assert swap_relation("A bonsai tree at dawn, ontology of leaves.", random.Random(0)) is None


def test_attribute_prefers_a_color_and_keeps_case():
    assert change_attribute("A red car and two dogs.", FirstRng()) == "A yellow car and two dogs."
    assert change_attribute("Red apples.", FirstRng()) == "Yellow apples."


def test_attribute_numbers_words_then_digits():
    assert change_attribute("Two dogs and 3 cats.", FirstRng()) == "Three dogs and 3 cats."
    assert change_attribute("Group of 3 cats.", FirstRng()) == "Group of 2 cats."
    assert change_attribute("Ten boats in a harbour.", FirstRng()) == "Two boats in a harbour."


@pytest.mark.parametrize(
    "caption",
    ["One dog on a bench.", "A 1990 car.", "A sign saying 2.5 km.", "A two-year-old girl.", "A reddish sky."],
)
def test_attribute_nothing_to_change(caption):
    assert change_attribute(caption, random.Random(0)) is None


def test_attribute_never_turns_a_color_into_itself_or_a_synonym():
    for seed in range(40):
        out = change_attribute("A grey cat.", random.Random(seed))
        new = words(out)[1]
        assert new.lower() in COLORS and new.lower() not in ("gray", "grey", "orange")


def test_an_orange_is_left_alone():
    assert change_attribute("An orange on a plate.", random.Random(0)) is None
    assert words(change_attribute("A bright orange bus.", FirstRng()))[2] == "red"


def test_existence_adds_an_absent_object_before_the_final_period():
    assert (
        add_object("A cat sits on a sofa.", read_objects(), FirstRng())
        == "A cat sits on a sofa, and a bicycle."
    )
    # "dog" is present as "dogs": the next object is used, with "an"
    assert add_object("Two dogs play.", ["dog", "apple"], FirstRng()) == "Two dogs play, and an apple."
    assert add_object("A dog", ["cat"], FirstRng()) == "A dog, and a cat"
    assert add_object("A bus and a teddy bear!", ["bus", "teddy bear"], FirstRng()) is None
    assert mentions("Three buses.", "bus") and mentions("A Traffic  Light.", "traffic light")
    assert not mentions("A catalogue.", "cat")


def test_packaged_objects_and_a_replacement_file(tmp_path):
    objects = read_objects()
    assert 40 <= len(objects) <= 60 and "dog" in objects and "traffic light" in objects
    path = tmp_path / "objects.txt"
    path.write_text("# mine\nGiraffe\n\nkite  # flies\ngiraffe\n")
    assert read_objects(str(path)) == ["giraffe", "kite"]
    path.write_text("# nothing\n")
    with pytest.raises(InputError, match="no objects"):
        read_objects(str(path))
    with pytest.raises(InputError, match="not found"):
        read_objects(str(tmp_path / "missing.txt"))


CAPTIONS = [
    "A red double-decker bus drives next to two black cars on a wet street.",
    "Three people sit on a bench under a large green tree.",
    "A white plate with a slice of pizza in front of a glass of water.",
    "Two zebras stand behind a wooden fence, a yellow sign to the left of them.",
    "A small brown dog is lying inside a blue basket near 4 pillows.",
]


@pytest.mark.parametrize("caption", CAPTIONS)
def test_every_variant_changes_exactly_one_word_or_inserts_one_phrase(caption):
    objects = read_objects()
    for seed in range(10):
        for kind in TYPES:
            out = rule_variant(caption, kind, rule_rng(seed, "r1", kind), objects)
            assert out is not None and out != caption
            [(tag, old, new)] = changes(caption, out)
            if kind == "existence":
                assert tag == "insert" and new[:2] in (["and", "a"], ["and", "an"])
                assert " ".join(new[2:]) in objects and not mentions(caption, " ".join(new[2:]))
            elif kind == "attribute":
                assert tag == "replace" and len(old) == len(new) == 1 and old != new
                vocab = {*COLORS, *NUMBER_WORDS, *map(str, range(2, 11))}
                assert old[0].lower() in vocab and new[0].lower() in vocab
            else:
                assert tag == "replace" and old != new


# --- the stage ---------------------------------------------------------------------------------------


def test_original_first_then_one_variant_per_type():
    out, ctx = run([rec("a", "  A red car is parked next to two trees. ", source="coco")])
    caption = "A red car is parked next to two trees."
    assert [r["hallucination"] for r in out] == ["none", "existence", "attribute", "relation"]
    assert out[0] == {"id": "a", "image": "a.jpg", "text": caption, "source": "coco", "original": caption,
                      "hallucination": "none", "from": "a"}  # fmt: skip
    for r in out[1:]:
        assert r["id"] == make_id("perturb", "a", r["hallucination"], "rules")
        assert r["image"] == "a.jpg" and r["source"] == "coco" and r["original"] == caption
        assert r["from"] == "a" and r["method"] == "rules" and "perturb_model" not in r
        assert r["text"] != caption
    assert len({r["id"] for r in out}) == 4 and not ctx.stats.dropped


def test_same_output_every_run_and_pinned():
    records = [rec(f"r{i}", c) for i, c in enumerate(CAPTIONS)]
    first, _ = run(records)
    again, _ = run(records)
    assert first == again
    # pinned: a change in the rules or in the seeding shows up here (random.Random(int) is stable across runs)
    assert [r["text"] for r in first[1:4]] == [
        "A red double-decker bus drives next to two black cars on a wet street, and a cat.",
        "A white double-decker bus drives next to two black cars on a wet street.",
        "A red double-decker bus drives far from two black cars on a wet street.",
    ]
    reseeded, _ = run(records, seed=1)
    assert [r["id"] for r in reseeded] == [r["id"] for r in first]  # ids do not depend on the seed
    assert [r["text"] for r in reseeded] != [r["text"] for r in first]


def test_types_field_and_skipped_types_are_counted_and_rejected():
    rejected: list[dict] = []
    ctx = StageContext("perturb", rejects=rejected.append)
    records = [rec("a", "x", caption="Mountains at sunset."), rec("b", "x", caption="Two cats on a mat.")]
    out, ctx = run(records, ctx, types=("relation", "attribute"), text_field="caption")
    assert [(r["from"], r["hallucination"]) for r in out] == [
        ("a", "none"), ("b", "none"), ("b", "relation"), ("b", "attribute")
    ]  # fmt: skip
    assert out[0]["text"] == "Mountains at sunset." and out[0]["caption"] == "Mountains at sunset."
    assert out[2]["text"] == "Two cats under a mat."
    assert dict(ctx.stats.dropped) == {
        "no relation phrase (relation)": 1,
        "no color or number word (attribute)": 1,
    }
    assert [(r["id"], r["reject_reason"]) for r in rejected] == [
        (make_id("perturb", "a", "relation", "rules"), "no relation phrase (relation)"),
        (make_id("perturb", "a", "attribute", "rules"), "no color or number word (attribute)"),
    ]


def test_bad_records_follow_the_error_policy():
    bad = [{"id": "x", "text": "A red car."}, rec("y", "   "), rec("z", "A red car.")]
    with pytest.raises(RecordFailure, match="missing field 'image'"):
        run(bad)
    out, ctx = run(bad, StageContext("perturb", on_error="skip"))
    assert {r["from"] for r in out} == {"z"}
    assert dict(ctx.stats.skipped) == {"missing field 'image'": 1} and ctx.stats.dropped["empty caption"] == 1


def test_parse_types():
    assert parse_types("relation, existence,relation") == ("relation", "existence")
    for value in ("colour", "", "existence,size"):
        with pytest.raises(UsageError):
            parse_types(value)


# --- through the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def with_perturb(monkeypatch):
    from clipdpo_cli import cli

    if "perturb" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "perturb"))


def test_cli_rules_resume_writes_nothing_twice(tmp_path, with_perturb):
    src = tmp_path / "captions.jsonl"
    src.write_text("".join(json.dumps(rec(f"r{i}", c)) + "\n" for i, c in enumerate(CAPTIONS[:2])))
    out = tmp_path / "out.jsonl"
    first = invoke_cli("perturb", str(src), "-o", str(out), "--types", "attribute,relation")
    assert first.exit_code == 0, first.stderr
    assert "clipdpo perturb: 2 in, 6 out" in first.stderr
    lines = out.read_text().splitlines()
    again = invoke_cli("perturb", str(src), "-o", str(out), "--types", "attribute,relation", "--resume")
    assert again.exit_code == 0 and "6 already done" in again.stderr
    assert out.read_text().splitlines() == lines
    with pytest.raises(UsageError, match="needs -m"):
        invoke_cli("perturb", str(src), "--method", "llm")
