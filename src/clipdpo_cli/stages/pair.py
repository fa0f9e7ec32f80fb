"""Pair filtering (paper Sec. 4.2): the best/worst captions of each image, and the checked QA answers,
become DPO preference pairs.

Caption pairs: within one image, every ordered pair (a, b) with score(a) - score(b) > min_margin and
similar lengths, |words(a) - words(b)| <= max_length_diff * max(words(a), words(b)), is a candidate.
Candidates are ranked by margin (largest first; ties by chosen id, then rejected id) and the top
`per_image` are emitted. A caption pair carries the chosen caption's own prompt (all prompts ask for a
description, so the rejected caption answers it too); `prompt` fixes one prompt for every pair instead.

QA records (kind "qa", from `ask`) already hold a positive and a negative answer: they become a pair when
their answer score (the synthetic caption's CLIP score) is at least min_answer_score.

A caption or QA answer that is empty (whitespace only) is never a side of a pair: it is dropped and counted
("empty caption", "empty answer"), since `train` refuses such pairs.

A record whose id was already seen in its image group (duplicated input) is left out and counted as
"duplicate id" (io.groups.unique_ids), so it is never paired with itself.

Memory: the input is streamed one image group at a time (caption and score emit each image's records
together). With input_order="any", records are first spilled to disk in buckets by image hash, so memory
is bounded by one bucket, not by the input.
"""

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import BadRecord
from clipdpo_cli.io.groups import groups_by_image
from clipdpo_cli.io.records import id_key, make_id, require
from clipdpo_cli.io.setting import setting
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.io.values import enum_value, none_or_float
from clipdpo_cli.stages.filter import word_count

EMPTY_CAPTION = "empty caption"
EMPTY_ANSWER = "empty answer"


@dataclass(frozen=True)
class PairSettings:
    """The pairing rules, paper values as defaults (each field is also a `clipdpo pair` option)."""

    min_margin: float = setting(
        2.0, "Keep caption pairs whose score difference is greater than this (paper: 2.0)."
    )
    max_length_diff: float = setting(
        0.25, "Max word-count difference, as a fraction of the longer caption.", min=0.0, max=1.0
    )
    per_image: int = setting(1, "Caption pairs emitted per image (best margins).", min=1)
    min_answer_score: float | None = setting(
        28.0, "Keep QA pairs whose answer (synthetic caption) score is at least this; 'none' keeps all.",
        cli_type=str, cli_default="28.0", parse=none_or_float("--min-answer-score"),
    )  # fmt: skip
    score_field: str = setting("clip_score", shared=True)
    prompt: str | None = setting(
        None, "Give every caption pair this prompt (default: the chosen's prompt).", show_default=False
    )
    input_order: str = setting("grouped", shared=True, parse=enum_value)  # or "any"


@dataclass(frozen=True)
class Candidate:
    """What pairing needs of one caption record (never the whole record)."""

    id: Any  # a JSON value: a string, or e.g. an integer (COCO-style ids)
    text: str
    score: float
    words: int
    prompt: str
    scorer: str | None = None  # the record's `scorer` (score's field): carried into the pair


def lengths_similar(a: int, b: int, max_diff: float) -> bool:
    """The length rule: the word counts differ by at most max_diff of the longer one."""
    return abs(a - b) <= max_diff * max(a, b)


def caption_pairs(
    captions: list[Candidate], rules: PairSettings
) -> tuple[list[tuple[Candidate, Candidate]], str]:
    """The top `per_image` (chosen, rejected) pairs of one image, and why there are none when empty."""
    if len(captions) < 2:
        return [], "image with < 2 captions"
    ranked = []
    any_margin = False
    for a, b in itertools.permutations(captions, 2):
        margin = a.score - b.score
        if margin > rules.min_margin:
            any_margin = True
            if lengths_similar(a.words, b.words, rules.max_length_diff):
                ranked.append((-margin, _order(a.id), _order(b.id), a, b))
    if not ranked:
        why = "no similar-length pair" if any_margin else f"no pair with margin > {rules.min_margin:g}"
        return [], why
    ranked.sort(key=lambda t: (t[0], t[1], t[2]))
    return [(a, b) for _, _, _, a, b in ranked[: rules.per_image]], ""


def _order(cid: Any) -> tuple[int, Any]:
    """A sort key for an id of any JSON type (ties of margin): strings, then numbers, then the rest."""
    if cid.__class__ is str:
        return 0, cid
    if cid.__class__ in (int, float):
        return 1, cid
    return 2, id_key(cid)


def _caption_candidate(record: dict[str, Any], rules: PairSettings) -> Candidate:
    text = require(record, "text")
    score = require(record, rules.score_field, "number", hint=" (run `clipdpo score` first)")
    prompt = record.get("prompt")
    scorer = record.get("scorer")
    return Candidate(
        record["id"], text, float(score), word_count(text), prompt if isinstance(prompt, str) else "",
        scorer if isinstance(scorer, str) else None,
    )


def _qa_pair(record: dict[str, Any], rules: PairSettings, ctx: StageContext) -> dict[str, Any] | None:
    question = require(record, "question")
    positive = require(record, "answer_pos")
    negative = require(record, "answer_neg")
    if not (str(positive).strip() and str(negative).strip()):
        ctx.drop(record, EMPTY_ANSWER)
        return None
    score = record.get(rules.score_field)
    if rules.min_answer_score is not None:
        score = require(record, rules.score_field, "number", hint=" (run `clipdpo score` first)")
        if score < rules.min_answer_score:
            ctx.drop(record, f"answer score < {rules.min_answer_score:g}")
            return None
    return {
        "id": make_id("pair", record["id"]),
        "image": record["image"],
        "kind": "qa",
        "prompt": question,
        "chosen": positive,
        "rejected": negative,
        "chosen_score": score,
        "rejected_score": None,
        "margin": None,
        "from": [record["id"]],
        **({"scorer": record["scorer"]} if isinstance(record.get("scorer"), str) else {}),
    }


def pairs_for_image(
    image: str, records: list[dict[str, Any]], rules: PairSettings, ctx: StageContext
) -> Iterator[dict[str, Any]]:
    """All pairs of one image's records (captions and QA)."""
    captions: list[Candidate] = []
    caption_records: list[dict[str, Any]] = []
    for record in records:
        try:
            if record.get("kind") == "qa":
                pair = _qa_pair(record, rules, ctx)
                if pair is not None:
                    yield pair
            else:
                candidate = _caption_candidate(record, rules)
                if candidate.words == 0:  # a sampled caption can be empty: it is no answer to train on
                    ctx.drop(record, EMPTY_CAPTION)
                    continue
                captions.append(candidate)
                caption_records.append(record)
        except BadRecord as exc:
            ctx.bad(record, exc)
    if not captions:
        return
    chosen_pairs, why = caption_pairs(captions, rules)
    if not chosen_pairs:
        for record in caption_records:
            ctx.drop(record, why)
        return
    for chosen, rejected in chosen_pairs:
        scorer = {"scorer": chosen.scorer} if chosen.scorer is not None else {}
        yield {
            "id": make_id("pair", chosen.id, rejected.id),
            "image": image,
            "kind": "caption",
            "prompt": rules.prompt if rules.prompt is not None else chosen.prompt,
            "chosen": chosen.text,
            "rejected": rejected.text,
            "chosen_score": chosen.score,
            "rejected_score": rejected.score,
            "margin": round(chosen.score - rejected.score, 6),
            "from": [chosen.id, rejected.id],
            **scorer,
        }


def pair_records(
    records: Iterable[dict[str, Any]], rules: PairSettings, ctx: StageContext | None = None
) -> Iterator[dict[str, Any]]:
    """DPO pair records from scored (and filtered) caption and QA records."""
    ctx = ctx or StageContext("pair")
    groups = groups_by_image(records, ctx, rules.input_order)
    for image, group in groups:
        yield from pairs_for_image(image, group, rules, ctx)
