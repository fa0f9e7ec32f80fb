"""Batch reading (io.jsonl) and the batch form of the filter rules, against their one-record references."""

import io
from collections import Counter
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from clipdpo_cli.io.errors import RecordFailure
from clipdpo_cli.io.jsonl import LineBatch, decode_batch, plain_lines, read_batches
from clipdpo_cli.io.records import content_id
from clipdpo_cli.io.stage import SKIPPED, StageContext
from clipdpo_cli.stages import filter as filter_module
from clipdpo_cli.stages.filter import FilterSettings, compile_rules, filter_batch, long_texts, word_count
from clipdpo_cli.stages.where import Condition


def batches(data: bytes, size: int) -> list[LineBatch]:
    return list(read_batches(io.BytesIO(data), size))


@pytest.mark.parametrize("size", [1, 3, 7, 64, 1 << 16])
def test_read_batches_gives_every_line_once_with_its_number(size):
    data = b'{"a":1}\n\n{"b":2}\nxyz\n{"last":true}'  # blank line, bad line, no final newline
    got = batches(data, size)
    lines = [line for b in got for line in b.lines]
    assert lines == data.split(b"\n")
    numbers = [b.first_lineno + i for b in got for i in range(len(b.lines))]
    assert numbers == [1, 2, 3, 4, 5]


def test_read_batches_empty_and_newline_only_inputs():
    assert batches(b"", 8) == []
    assert [b.lines for b in batches(b"\n", 8)] == [[b""]]


def test_a_line_longer_than_the_block_is_gathered_whole():
    long = b'{"t":"' + b"x" * 1000 + b'"}'
    got = batches(long + b"\n" + b'{"u":1}\n', 64)
    assert [line for b in got for line in b.lines] == [long, b'{"u":1}']


@pytest.mark.parametrize(
    ("line", "plain"),
    [
        (b'{"text":"a dog"}', True),
        (b'{"text":"a \\"dog\\""}', False),  # an escape
        (b'{"text":"a\\tdog"}', False),
        ('{"text":"un café"}'.encode(), False),  # non-ASCII: may hold U+00A0 and the like
    ],
)
def test_plain_means_ascii_without_backslash(line, plain):
    assert batches(line + b"\n", 1 << 16)[0].plain is plain
    assert plain_lines([line, None]) == [plain, False]


def test_decode_batch_keeps_the_lines_when_all_is_well():
    batch = LineBatch([b'{"id":"a","x":1}', b' {"id":"b"} '], 1, True)
    records, lines = decode_batch(batch, lambda *a: pytest.fail(str(a)))
    assert records == [{"id": "a", "x": 1}, {"id": "b"}]
    assert lines is batch.lines


def test_decode_batch_gives_ids_and_reports_bad_lines_by_number():
    bad = []
    batch = LineBatch([b'{"id":"a"}', b"", b"{oops", b"[1]", b'{"x":2}'], 10, True)
    records, lines = decode_batch(batch, lambda n, reason, msg: bad.append((n, reason)))
    assert bad == [(12, "invalid JSON"), (13, "not a JSON object")]
    assert records == [{"id": "a"}, {"id": content_id({"x": 2}), "x": 2}]
    assert lines == [b'{"id":"a"}', None]  # the second record was given an id: no raw line


WORDS = st.text(alphabet=" \t\n\xa0\u2003ab\x1cé", max_size=40)


@given(st.lists(WORDS, max_size=30), st.integers(min_value=0, max_value=12))
@settings(max_examples=300, deadline=None)
def test_long_texts_agrees_with_word_count(texts, max_words):
    expected = {i for i, t in enumerate(texts) if word_count(t) > max_words}
    lines = [orjson.dumps({"text": t}) for t in texts]  # each text's own JSON line
    assert set(long_texts(texts, max_words, lines)) == expected
    assert set(long_texts(texts, max_words)) == expected
    plain_only = [t for t, p in zip(texts, plain_lines(lines), strict=True) if p]  # a plain batch
    expected_plain = {i for i, t in enumerate(plain_only) if word_count(t) > max_words}
    assert set(long_texts(plain_only, max_words, plain=True)) == expected_plain


def test_long_texts_hand_cases():
    texts = ["a b c d", "a b c d e", "a  b c d", " a b c d ", "a b c d\te"]
    lines = [orjson.dumps({"text": t}) for t in texts]
    # 4 words, 5 words, 4 words with a double space, 4 words with spaces at both ends, 5 words with a tab
    assert sorted(long_texts(texts, 4, lines)) == [1, 4]
    assert sorted(long_texts(texts[:4], 4, plain=True)) == [1]


CAPTION_WORDS = st.tuples(st.sampled_from(["a", "dog", "é"]), st.sampled_from([" ", " ", "  ", "\t"]))
CAPTION_TEXTS = st.lists(CAPTION_WORDS, max_size=30).map(lambda pairs: "".join(w + s for w, s in pairs))
WELL_TYPED = st.fixed_dictionaries(
    {
        "id": st.text(alphabet="abcdef0123", min_size=1, max_size=6),
        "image": st.sampled_from(["a.jpg", "b.jpg", "c.jpg"]),
        "clip_score": st.floats(min_value=20, max_value=35),
        "text": CAPTION_TEXTS,
    },
    optional={"category": st.sampled_from(["text", "people"])},
)


SCORES = st.one_of(
    st.floats(min_value=20, max_value=35), st.integers(20, 35), st.none(), st.booleans(), st.just("30")
)
RECORDS = st.fixed_dictionaries(
    {
        "id": st.text(alphabet="abcdef0123", min_size=1, max_size=6),
        "image": st.one_of(st.sampled_from(["a.jpg", "b.jpg", "c.jpg", "d.jpg"]), st.none()),
        "clip_score": SCORES,
        "question_score": SCORES,
        "text": st.one_of(WORDS, st.none(), st.integers(-5, 5)),
    },
    optional={
        "kind": st.sampled_from(["caption", "qa", None]),
        "category": st.sampled_from(["text", "people", None]),
    },
)


CAPTION_BATCH = st.fixed_dictionaries(
    {
        "id": st.text(alphabet="abcdef0123", min_size=1, max_size=6),
        "image": st.sampled_from(["a.jpg", "b.jpg", "c.jpg", "d.jpg"]),
        "clip_score": st.one_of(st.floats(min_value=20, max_value=35), st.integers(20, 35)),
        "text": st.one_of(WORDS, CAPTION_TEXTS),
    },
    optional={
        "kind": st.sampled_from(["caption", None]),
        "category": st.sampled_from(["text", "people", None]),
        "question_score": SCORES,
    },
)  # a well-typed caption record: the kind of batch the column path judges


def counting_filter_batch(rules: FilterSettings) -> tuple[Any, list[bool]]:
    """filter_batch(rules), and a list that gets, per batch judged, whether the column path judged it."""
    real, took = filter_module._column_rules, []

    def counting(rules: FilterSettings) -> Any:
        judge = real(rules)

        def counted(*args: Any) -> Any:
            reasons = judge(*args)
            took.append(reasons is not None)
            return reasons

        return counted

    with patch.object(filter_module, "_column_rules", counting):
        return filter_batch(rules), took


def test_filter_batch_gives_compile_rules_reasons():
    """Mixed batches (any field may be missing or mistyped: record by record) and well-typed caption
    batches (column by column) give compile_rules' reasons; most examples with a score or length rule
    really take the column path (counted, not assumed)."""
    paths: Counter = Counter()

    @given(
        st.one_of(st.lists(RECORDS, max_size=25), st.lists(CAPTION_BATCH, min_size=1, max_size=25)),
        st.sampled_from([None, 28.0]),
        st.sampled_from([None, 25]),
        st.sampled_from([None, 3, 60]),
        st.sampled_from([1.0, 0.25, 0.0]),
        st.sampled_from([(), (Condition.parse("image == a.jpg"),)]),
    )
    @settings(max_examples=400, deadline=None, derandomize=True)  # the path shares below: the same every run
    def check(records, min_caption, min_question, max_len, keep, where):
        rules = FilterSettings(min_caption, min_question, max_len, keep, where)
        reason_of, ctx = compile_rules(rules), StageContext(on_error="skip")
        expected, n_bad = [], 0
        for record in records:
            try:
                expected.append(reason_of(record))
            except Exception:
                expected.append(SKIPPED)
                n_bad += 1
        lines = [orjson.dumps(r) for r in records]
        select, took = counting_filter_batch(rules)
        assert select(records, lines, all(plain_lines(lines)), ctx) == expected
        assert sum(ctx.stats.skipped.values()) == n_bad
        assert len(took) == 1
        if records and (min_caption is not None or max_len is not None):
            paths["column" if took[0] else "record"] += 1

    check()
    total = paths["column"] + paths["record"]
    assert paths["column"] >= 0.3 * total and paths["record"] >= 0.2 * total, paths


def test_filter_batch_fast_path_hand_case():
    records = [
        {"id": "1", "image": "x", "clip_score": 27.9, "text": "w " * 70},  # score first, then length
        {"id": "2", "image": "x", "clip_score": 30, "text": "w " * 70},
        {"id": "3", "image": "x", "clip_score": 30.0, "text": "short", "category": "text"},
        {"id": "4", "image": "x", "clip_score": 28.0, "text": "short"},
    ]
    rules = FilterSettings(text_keep=0.0)
    lines = [orjson.dumps(r) for r in records]
    reasons = filter_batch(rules)(records, lines, True, StageContext())
    assert reasons == ["caption score < 28", "caption > 60 words", "text image down-sampled", None]


def test_filter_batch_raises_on_a_bad_record_by_default():
    records = [{"id": "1", "clip_score": 30.0, "text": "ok"}, {"id": "2", "clip_score": "high", "text": "x"}]
    with pytest.raises(RecordFailure, match="field 'clip_score' is not a number"):
        filter_batch(FilterSettings())(records, [orjson.dumps(r) for r in records], True, StageContext())


def test_filter_batch_keeps_plain_flags_beside_their_records():
    # the tab-separated text is long; its line is not plain, and the dropped record before it is
    records = [
        {"id": "1", "clip_score": 20.0, "text": "a"},
        {"id": "2", "clip_score": 30.0, "text": "a\tb\tc\td\te\tf\tg"},
    ]
    lines = [orjson.dumps(r) for r in records]
    assert plain_lines(lines) == [True, False]
    reasons = filter_batch(FilterSettings(max_words=3))(records, lines, False, StageContext())
    assert reasons == ["caption score < 28", "caption > 3 words"]


@given(st.lists(WELL_TYPED, min_size=1, max_size=25), st.sampled_from([3, 10]), st.sampled_from([1.0, 0.5]))
@settings(max_examples=300, deadline=None)
def test_filter_batch_column_path_gives_compile_rules_reasons(records, max_length, keep):
    """Well-typed captions take the column path, length rule included (the test above mostly cannot)."""
    rules = FilterSettings(max_words=max_length, text_keep=keep)
    expected = [compile_rules(rules)(r) for r in records]
    lines = [orjson.dumps(r) for r in records]
    select, took = counting_filter_batch(rules)
    judged = select(records, lines, all(plain_lines(lines)), StageContext())
    assert judged == expected
    assert took == [True]  # judged column by column
    event(f"length rule drops: {rules.length_reason in expected}")
