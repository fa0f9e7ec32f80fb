"""Global filtering (paper Sec. 4.2): score thresholds, caption length, text-image down-sampling, --where."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import BadRecord
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.stages.where import Condition


def word_count(text: str) -> int:
    """Caption length in whitespace-separated words (the unit of --max-length)."""
    return len(text.split())


def longer_than(text: str, max_words: int) -> bool:
    """word_count(text) > max_words, without splitting in the common case.

    A printable string has no whitespace but ' ', so it holds at most count(' ') + 1 words; only texts
    with many spaces or other whitespace are split.
    """
    if len(text) <= 2 * max_words:  # L characters hold at most (L + 1) // 2 words
        return False
    if text.count(" ") < max_words and text.isprintable():
        return False
    return len(text.split()) > max_words


def keep_fraction_hash(key: str) -> float:
    """A number in [0, 1) fixed by `key`: the same images are kept on every run and every shard."""
    return zlib.crc32(key.encode("utf-8")) / 2**32


@dataclass(frozen=True)
class FilterRules:
    """The rules, paper values as defaults. A threshold of None turns its rule off."""

    min_caption_score: float | None = 28.0
    min_question_score: float | None = 25.0
    max_length: int | None = 60
    text_keep: float = 0.25
    where: tuple[Condition, ...] = ()
    score_field: str = "clip_score"
    question_score_field: str = "question_score"
    text_field: str = "text"


def _bad_number(record: dict[str, Any], field: str, rule: str) -> BadRecord:
    value = record.get(field)
    what = "missing" if field not in record else f"not a number ({type(value).__name__})"
    return BadRecord(f"field '{field}' is {what}; needed by {rule}", reason=f"bad field '{field}'")


def compile_rules(rules: FilterRules) -> Callable[[dict[str, Any]], str | None]:
    """A function record -> reject reason (None to keep), specialised to `rules` for speed.

    Records with kind "qa" are questions: the question-score rule applies to them; every other record is a
    caption: the caption-score and length rules apply. Down-sampling and --where apply to all. Raises
    BadRecord when a field a rule needs is missing or mistyped.
    """
    min_caption, min_question, max_length = (
        rules.min_caption_score,
        rules.min_question_score,
        rules.max_length,
    )
    score_field, question_field, text_field = rules.score_field, rules.question_score_field, rules.text_field
    text_keep, where = rules.text_keep, rules.where
    caption_reason = f"caption score < {min_caption:g}" if min_caption is not None else ""
    question_reason = f"question score < {min_question:g}" if min_question is not None else ""
    length_reason = f"caption > {max_length} words" if max_length is not None else ""
    int_, float_ = int, float

    def reason(record: dict[str, Any]) -> str | None:
        get = record.get
        if text_keep < 1.0 and get("category") == "text":
            key = get("image")
            if keep_fraction_hash(key if isinstance(key, str) else str(get("id"))) >= text_keep:
                return "text image down-sampled"
        if get("kind") == "qa":
            if min_question is not None:
                score = get(question_field)
                if score.__class__ is not float_ and score.__class__ is not int_:
                    raise _bad_number(record, question_field, "--min-question-score")
                if score < min_question:
                    return question_reason
        else:
            if min_caption is not None:
                score = get(score_field)
                if score.__class__ is not float_ and score.__class__ is not int_:
                    raise _bad_number(record, score_field, "--min-caption-score")
                if score < min_caption:
                    return caption_reason
            if max_length is not None:
                text = get(text_field)
                if text.__class__ is not str:
                    raise BadRecord(f"field '{text_field}' must be a string", reason="bad text field")
                if longer_than(text, max_length):
                    return length_reason
        for condition in where:
            if not condition.holds(record):
                return f"where {condition.text}"
        return None

    return reason


def reject_reason(record: dict[str, Any], rules: FilterRules) -> str | None:
    """Why the rules drop this record, or None to keep it (see compile_rules)."""
    return compile_rules(rules)(record)


def filter_records(
    records: Iterator[dict[str, Any]], rules: FilterRules, ctx: StageContext | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the records that pass every rule; each dropped one is counted (and sent to rejects) by reason."""
    ctx = ctx or StageContext("filter")
    reason_of = compile_rules(rules)
    if ctx.has_rejects:
        drop = ctx.drop
    else:  # only counts: skip the method call and the rejects check per dropped record
        dropped = ctx.stats.dropped

        def drop(_record: dict[str, Any], reason: str) -> None:
            dropped[reason] += 1

    for record in records:
        try:
            reason = reason_of(record)
        except BadRecord as exc:
            ctx.bad(record, exc)
            continue
        if reason is None:
            yield record
        else:
            drop(record, reason)
