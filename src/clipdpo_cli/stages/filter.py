"""Global filtering (paper Sec. 4.2): score thresholds, caption length, text-image down-sampling, --where."""

import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from itertools import compress, repeat
from operator import eq, ge, gt, is_, not_
from typing import Any

from clipdpo_cli.io.errors import BadRecord
from clipdpo_cli.io.jsonl import plain_lines
from clipdpo_cli.io.setting import setting
from clipdpo_cli.io.shard import shard_key
from clipdpo_cli.io.stage import SKIPPED, BatchSelector, StageContext
from clipdpo_cli.io.values import none_or_float, none_or_int
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


def long_texts(
    texts: list[str], max_words: int, lines: list[bytes | None] | None = None, plain: bool = False
) -> list[int]:
    """Indices of the texts with more than `max_words` words: longer_than over a batch, in C-level passes.

    `lines[i]` is text i's input line, `plain` says they are all plain (see io.jsonl.LineBatch). The text
    of a plain line holds no whitespace but ' ': with fewer than `max_words` spaces it cannot be too long,
    and with more, no run of spaces and no space at either end, it has exactly one word more than spaces.
    Other texts are split.
    """
    longish = list(map(gt, map(len, texts), repeat(2 * max_words)))  # L characters hold <= (L+1)//2 words
    candidates: Iterable[int] = compress(range(len(texts)), longish)
    hard: list[int] = []
    if plain:
        easy, easy_texts = candidates, compress(texts, longish)
    else:
        candidates = list(candidates)
        flags = plain_lines(list(compress(lines, longish))) if lines else [False] * len(candidates)
        easy = list(compress(candidates, flags))
        hard = [i for i in compress(candidates, map(not_, flags)) if longer_than(texts[i], max_words)]
        easy_texts = map(texts.__getitem__, easy)
    many_spaces = compress(easy, map(ge, map(str.count, easy_texts, repeat(" ")), repeat(max_words)))
    return hard + [
        i
        for i in many_spaces
        if ("  " not in (text := texts[i]) and text[0] != " " and text[-1] != " ")
        or len(text.split(maxsplit=max_words)) > max_words
    ]


def keep_fraction_hash(key: str) -> float:
    """A number in [0, 1) fixed by `key`: the same images are kept on every run and every shard."""
    return zlib.crc32(key.encode("utf-8")) / 2**32


DOWNSAMPLED = "text image down-sampled"
CAPTION_RULE, QUESTION_RULE = "--min-caption-score", "--min-question-score"


def _conditions(texts: list[str] | None) -> tuple[Condition, ...]:
    return tuple(Condition.parse(t) for t in texts or ())


@dataclass(frozen=True)
class FilterSettings:
    """The rules, paper values as defaults (each field is also a `clipdpo filter` option). A threshold of None
    turns its rule off."""

    min_caption_score: float | None = setting(
        28.0, "Drop captions scoring below this (paper: 28.0); 'none' turns it off.",
        cli_type=str, cli_default="28.0", parse=none_or_float("--min-caption-score"),
    )  # fmt: skip
    min_question_score: float | None = setting(
        25.0, "Drop questions (kind qa) whose question score is below this (paper: 25.0).",
        cli_type=str, cli_default="25.0", parse=none_or_float("--min-question-score"),
    )  # fmt: skip
    max_words: int | None = setting(
        60, "Drop captions longer than this many words (CLIP reads 77 tokens, ~60); 'none' turns it off.",
        cli_type=str, cli_default="60", parse=none_or_int("--max-words"), aliases=("--max-length",),
    )  # fmt: skip
    text_keep: float = setting(
        0.25, "Fraction of text-category images kept (fixed by image hash).", min=0.0, max=1.0
    )
    where: tuple[Condition, ...] = setting(
        (), "Keep only records where 'FIELD OP VALUE' holds (repeatable, all must hold).",
        cli_type=list[str] | None, cli_default=None, parse=_conditions,
    )  # fmt: skip
    score_field: str = setting("clip_score", shared=True)
    question_score_field: str = setting("question_score", "Field holding the question score.")
    text_field: str = "text"

    @cached_property
    def caption_reason(self) -> str:
        return f"caption score < {self.min_caption_score:g}"

    @cached_property
    def question_reason(self) -> str:
        return f"question score < {self.min_question_score:g}"

    @cached_property
    def length_reason(self) -> str:
        return f"caption > {self.max_words} words"


def downsampled(record: dict[str, Any], text_keep: float) -> bool:
    """Whether a text-category record's image falls outside the kept fraction (fixed by image hash)."""
    return keep_fraction_hash(shard_key(record)) >= text_keep


def _number(record: dict[str, Any], field: str, rule: str) -> float:
    """The record's number in `field` (an int or a float, not a bool), or BadRecord naming the rule."""
    value = record.get(field)
    if value.__class__ is float or value.__class__ is int:
        return value  # type: ignore[return-value]
    what = "missing" if field not in record else f"not a number ({type(value).__name__})"
    raise BadRecord(f"field '{field}' is {what}; needed by {rule}", reason=f"bad field '{field}'")


def compile_rules(rules: FilterSettings) -> Callable[[dict[str, Any]], str | None]:
    """A function record -> reject reason (None to keep), specialised to `rules` for speed.

    Records with kind "qa" are questions: the question-score rule applies to them; every other record is a
    caption: the caption-score and length rules apply. Down-sampling and --where apply to all. Raises
    BadRecord when a field a rule needs is missing or mistyped.
    """
    min_caption, min_question, max_words = (
        rules.min_caption_score,
        rules.min_question_score,
        rules.max_words,
    )
    score_field, question_field, text_field = rules.score_field, rules.question_score_field, rules.text_field
    text_keep, where = rules.text_keep, rules.where

    def reason(record: dict[str, Any]) -> str | None:
        get = record.get
        if text_keep < 1.0 and get("category") == "text" and downsampled(record, text_keep):
            return DOWNSAMPLED
        if get("kind") == "qa":
            if min_question is not None and _number(record, question_field, QUESTION_RULE) < min_question:
                return rules.question_reason
        else:
            if min_caption is not None and _number(record, score_field, CAPTION_RULE) < min_caption:
                return rules.caption_reason
            if max_words is not None:
                text = get(text_field)
                if text.__class__ is not str:
                    raise BadRecord(f"field '{text_field}' must be a string", reason="bad text field")
                if longer_than(text, max_words):
                    return rules.length_reason
        return _where_reason(record, where)

    return reason


def _where_reason(record: dict[str, Any], where: tuple[Condition, ...]) -> str | None:
    """The first --where condition the record fails, as a reject reason; None when all hold."""
    for condition in where:
        if not condition.holds(record):
            return f"where {condition.text}"
    return None


def filter_batch(rules: FilterSettings) -> BatchSelector:
    """compile_rules for a batch (io.runner.run_selection): one reason per record, or SKIPPED.

    A batch of well-typed caption records is judged column by column in C-level passes; a batch with
    questions or with a missing or mistyped field goes record by record through compile_rules, so both
    give the same reasons and the same errors.
    """
    reason_of, where = compile_rules(rules), rules.where
    judge_columns = _column_rules(rules)

    def select(
        records: list[dict[str, Any]], lines: list[bytes | None], plain: bool, ctx: StageContext
    ) -> list[Any]:
        reasons = judge_columns(records, lines, plain)
        if reasons is None:
            return _one_by_one(records, reason_of, ctx)
        if where:
            for i in compress(range(len(records)), map(is_, reasons, repeat(None))):
                reasons[i] = _where_reason(records[i], where)
        return reasons

    return select


def _one_by_one(
    records: list[dict[str, Any]], reason_of: Callable[[dict[str, Any]], str | None], ctx: StageContext
) -> list[Any]:
    reasons: list[Any] = []
    for record in records:
        try:
            reasons.append(reason_of(record))
        except BadRecord as exc:
            ctx.bad(record, exc)
            reasons.append(SKIPPED)
    return reasons


ColumnJudge = Callable[[list[dict[str, Any]], list[bytes | None], bool], list[Any] | None]


def _column_rules(rules: FilterSettings) -> ColumnJudge:
    """The rules over the columns of a batch of captions, or None when the batch needs compile_rules.

    Each record keeps the reason of the first rule in compile_rules' order that drops it: the length
    rule only looks at records the score rule keeps, and down-sampling, checked first there, overwrites.
    """
    min_caption, max_words, text_keep = rules.min_caption_score, rules.max_words, rules.text_keep
    score_field, text_field = rules.score_field, rules.text_field
    get, numbers, strings = dict.get, {float, int}, {str}

    def judge(records: list[dict[str, Any]], lines: list[bytes | None], plain: bool) -> list[Any] | None:
        n = len(records)
        if "qa" in map(get, records, repeat("kind")):
            return None
        reasons: list[Any] = [None] * n
        candidates: Any = records  # records no earlier rule drops: only they meet the length rule
        kept = range(n)  # their positions
        if min_caption is not None and n:
            scores = list(map(get, records, repeat(score_field)))
            if not set(map(type, scores)) <= numbers:
                return None
            passed = list(map(ge, scores, repeat(min_caption)))
            reasons = list(map((rules.caption_reason, None).__getitem__, passed))  # True -> None (kept)
            candidates, kept = compress(records, passed), list(compress(kept, passed))
            if not plain:
                lines = list(compress(lines, passed))
        if max_words is not None and n:
            texts = list(map(get, candidates, repeat(text_field)))
            if texts and set(map(type, texts)) != strings:
                return None
            for i in long_texts(texts, max_words, lines, plain):
                reasons[kept[i]] = rules.length_reason
        if text_keep < 1.0:
            for i in compress(range(n), map(eq, map(get, records, repeat("category")), repeat("text"))):
                if downsampled(records[i], text_keep):
                    reasons[i] = DOWNSAMPLED
        return reasons

    return judge


def reject_reason(record: dict[str, Any], rules: FilterSettings) -> str | None:
    """Why the rules drop this record, or None to keep it (see compile_rules)."""
    return compile_rules(rules)(record)


def filter_records(
    records: Iterator[dict[str, Any]], rules: FilterSettings, ctx: StageContext | None = None
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
