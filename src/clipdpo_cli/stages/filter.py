"""Global filtering (paper Sec. 4.2): score thresholds, caption length, text-image down-sampling, --where."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import BadRecord
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.stages.where import Condition

_NUMBER = (int, float)


def word_count(text: str) -> int:
    """Caption length in whitespace-separated words (the unit of --max-length)."""
    return len(text.split())


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


def _number(record: dict[str, Any], field: str, rule: str) -> float:
    value = record.get(field)
    if isinstance(value, _NUMBER) and not isinstance(value, bool):
        return value
    what = "missing" if field not in record else f"not a number ({type(value).__name__})"
    raise BadRecord(f"field '{field}' is {what}; needed by {rule}", reason=f"bad field '{field}'")


def reject_reason(record: dict[str, Any], rules: FilterRules) -> str | None:
    """Why the rules drop this record, or None to keep it. Raises BadRecord if a needed field is unusable.

    Records with kind "qa" are questions: the question-score rule applies to them; every other record is a
    caption: the caption-score and length rules apply. Down-sampling and --where apply to all.
    """
    if rules.text_keep < 1.0 and record.get("category") == "text":
        key = record.get("image")
        if keep_fraction_hash(key if isinstance(key, str) else str(record.get("id"))) >= rules.text_keep:
            return "text image down-sampled"
    if record.get("kind") == "qa":
        if rules.min_question_score is not None:
            score = _number(record, rules.question_score_field, "--min-question-score")
            if score < rules.min_question_score:
                return f"question score < {rules.min_question_score:g}"
    else:
        if rules.min_caption_score is not None:
            score = _number(record, rules.score_field, "--min-caption-score")
            if score < rules.min_caption_score:
                return f"caption score < {rules.min_caption_score:g}"
        if rules.max_length is not None:
            text = record.get(rules.text_field)
            if not isinstance(text, str):
                raise BadRecord(f"field '{rules.text_field}' must be a string", reason="bad text field")
            if word_count(text) > rules.max_length:
                return f"caption > {rules.max_length} words"
    for condition in rules.where:
        if not condition.holds(record):
            return f"where {condition.text}"
    return None


def filter_records(
    records: Iterator[dict[str, Any]], rules: FilterRules, ctx: StageContext | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the records that pass every rule; each dropped one is counted (and sent to rejects) by reason."""
    ctx = ctx or StageContext("filter")
    for record in records:
        try:
            reason = reject_reason(record, rules)
        except BadRecord as exc:
            ctx.bad(record, exc)
            continue
        if reason is None:
            yield record
        else:
            ctx.drop(record, reason)
