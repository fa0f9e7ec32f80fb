import pytest

from clipdpo_cli.io.errors import RecordFailure, UsageError
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.stages.filter import (
    FilterSettings,
    filter_records,
    keep_fraction_hash,
    reject_reason,
    word_count,
)
from clipdpo_cli.stages.where import Condition


def cap(score, text="a dog on grass", **kw):
    return {
        "id": kw.pop("id", f"c{score}"),
        "image": kw.pop("image", "i.jpg"),
        "kind": "caption",
        "text": text,
        "clip_score": score,
        **kw,
    }


def qa(qscore, **kw):
    return {
        "id": kw.pop("id", f"q{qscore}"),
        "image": "i.jpg",
        "kind": "qa",
        "question": "q?",
        "text": "t",
        "question_score": qscore,
        "clip_score": 30.0,
        **kw,
    }


def test_caption_score_threshold_is_inclusive_at_28():
    rules = FilterSettings()
    assert reject_reason(cap(28.0), rules) is None
    assert reject_reason(cap(27.999), rules) == "caption score < 28"


def test_question_threshold_applies_to_qa_only():
    rules = FilterSettings()
    assert reject_reason(qa(25.0), rules) is None
    assert reject_reason(qa(24.9), rules) == "question score < 25"
    # a QA record is not judged by the caption threshold or length
    assert reject_reason(qa(26, clip_score=1.0, text="w " * 500), rules) is None


def test_length_rule_counts_words():
    rules = FilterSettings(max_words=5)
    assert word_count("  one two\tthree\nfour five ") == 5
    assert reject_reason(cap(30, "one two three four five"), rules) is None
    assert reject_reason(cap(30, "one two three four five six"), rules) == "caption > 5 words"


def test_rules_can_be_turned_off():
    rules = FilterSettings(min_caption_score=None, max_words=None, min_question_score=None)
    assert reject_reason(cap(-5, "w " * 1000), rules) is None
    assert reject_reason({"id": "x", "kind": "qa"}, rules) is None


def test_text_downsampling_is_deterministic_by_image():
    rules = FilterSettings(text_keep=0.5)
    images = [f"img{i}.jpg" for i in range(400)]
    kept = [im for im in images if reject_reason(cap(30, image=im, category="text"), rules) is None]
    assert kept == [im for im in images if keep_fraction_hash(im) < 0.5]
    assert 150 < len(kept) < 250
    # other categories untouched; keep=1.0 keeps all text images; keep=0 drops all
    assert reject_reason(cap(30, image=images[0], category="objects"), FilterSettings(text_keep=0.0)) is None
    assert reject_reason(cap(30, category="text"), FilterSettings(text_keep=1.0)) is None
    assert reject_reason(cap(30, category="text"), FilterSettings(text_keep=0.0)) == "text image down-sampled"


def test_keep_fraction_hash_value():
    # CRC-32 of "abc" is 0x352441C2 = 891568578; divided by 2**32
    assert keep_fraction_hash("abc") == pytest.approx(0.20758448587730527, abs=1e-15)


@pytest.mark.parametrize(
    "text,record,holds",
    [
        ("category == objects", {"category": "objects"}, True),
        ("category == objects", {"category": "people"}, False),
        ("category != objects", {"category": "people"}, True),
        ("clip_score>=30", {"clip_score": 30}, True),
        ("clip_score > 30", {"clip_score": 30}, False),
        ("clip_score < 30.5", {"clip_score": 30}, True),
        ("clip_score <= 29", {"clip_score": 30}, False),
        ('category in ["people", "scenes"]', {"category": "scenes"}, True),
        ("text contains dog", {"text": "a dog"}, True),
        ("meta.src == coco", {"meta": {"src": "coco"}}, True),
        ("meta.src == coco", {"meta": {}}, False),
        ("category exists", {"category": None}, True),
        ("category exists", {}, False),
        ("clip_score > 3", {"clip_score": "high"}, False),
        ("sample == 0", {"sample": 0}, True),
        ('model == "llava"', {"model": "llava"}, True),
    ],
)
def test_where_conditions(text, record, holds):
    assert Condition.parse(text).holds(record) is holds


@pytest.mark.parametrize("text", ["nonsense", "a ~ b", "x in 3"])
def test_where_rejects_bad_syntax(text):
    with pytest.raises(UsageError):
        Condition.parse(text)


def test_filter_records_counts_and_rejects():
    rejected = []
    ctx = StageContext("filter", rejects=rejected.append)
    records = [
        cap(30, id="a"),
        cap(20, id="b"),
        qa(20, id="c"),
        cap(31, "w " * 70, id="d"),
        cap(35, id="e", category="people"),
    ]
    rules = FilterSettings(where=(Condition.parse("category exists"),))
    kept = list(filter_records(iter(records), rules, ctx))
    assert [r["id"] for r in kept] == ["e"]
    assert dict(ctx.stats.dropped) == {
        "caption score < 28": 1,
        "question score < 25": 1,
        "caption > 60 words": 1,
        "where category exists": 1,
    }
    assert [(r["id"], r["reject_reason"]) for r in rejected] == [
        ("a", "where category exists"),
        ("b", "caption score < 28"),
        ("c", "question score < 25"),
        ("d", "caption > 60 words"),
    ]
    assert kept[0] is records[4]  # passed through untouched


def test_missing_score_is_bad_record():
    bad = {"id": "z", "image": "i.jpg", "text": "x"}
    with pytest.raises(RecordFailure, match="clip_score"):
        list(filter_records(iter([bad]), FilterSettings()))
    ctx = StageContext("filter", on_error="skip")
    assert list(filter_records(iter([bad, cap(30)]), FilterSettings(), ctx)) == [cap(30)]
    assert dict(ctx.stats.skipped) == {"bad field 'clip_score'": 1}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "one",
        "a b c d e",
        "a  b  c  d  e  f",
        "a\tb\nc d e f",
        "a\u00a0b c d e f g",
        "   a b c   d e f   ",
        "word " * 5,
        "word " * 6,
        "x" * 40,
        "a b\u2003c d e f g",
    ],
)
def test_longer_than_agrees_with_split(text):
    from clipdpo_cli.stages.filter import longer_than

    for n in range(0, 9):
        assert longer_than(text, n) == (len(text.split()) > n), (text, n)
