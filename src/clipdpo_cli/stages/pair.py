"""Pair filtering (paper Sec. 4.2): the best/worst captions of each image, and the checked QA answers,
become DPO preference pairs.

Caption pairs: within one image, every ordered pair (a, b) of different texts with score(a) - score(b) >
min_margin and similar lengths, |words(a) - words(b)| <= max_length_diff * max(words(a), words(b)), is a
candidate. Candidates are ranked by margin (largest first; ties by chosen id, then rejected id) and the top
`per_image` are emitted. A caption pair carries the chosen caption's own prompt (all prompts ask for a
description, so the rejected caption answers it too); `prompt` fixes one prompt for every pair instead.

Rank fusion (`fuse_field`, CSR's calibrated reward: Zhou et al., NeurIPS 2024): each caption's score becomes
    fused = alpha * rank(score_field) + (1 - alpha) * rank(fuse_field)
among the captions of its image, where rank(x) = (n - i) / n for the caption in position i (0-based) of the
n captions sorted by x, highest first (the best 1, the worst 1/n; tied values share the mean of their
positions' ranks). CSR writes the same as a cost, (1 - alpha) * (i_fuse + 1) / n + alpha * (i_score + 1) / n,
lowest best: fused = 1 + 1/n - cost, the same order. Equal texts get different fused scores when their
`fuse_field` differs (the likelihood of one caption under two prompts), which is why two equal texts are
never paired. With the LVLM's own log-likelihood as fuse_field
(`score --scorer lvlm`), this is CSR's fusion of CLIP with the policy's likelihood (its `clip_alpha` 0.9);
margins are then in rank units (at most 1 - 1/n), not CLIP points.

QA records (kind "qa", from `ask`) already hold a positive and a negative answer: they become a pair when
their answer score (the synthetic caption's CLIP score) is at least min_answer_score.

A caption or QA answer that is empty (whitespace only) is never a side of a pair: it is dropped and counted
("empty caption", "empty answer"), since `train` refuses such pairs.

A record whose id was already seen in its image group (duplicated input) is left out and counted as
"duplicate id" (io.groups.unique_ids), so it is never paired with itself.

POVID's two sources (`source`, `pair --source`; Zhou et al. 2024), each a pair of one trusted or clean
answer against one made to hallucinate:
- "injected": records of `perturb` (a trusted answer and its variants with one hallucination each): each
  variant becomes a pair, chosen = its `original`, rejected = the variant (injected_pairs);
- "noised": captions of `caption` with and without `--image-noise`: per image, a caption of the clean image
  and one of the noised image with the same prompt and sample number become a pair, chosen = the clean one
  (noised_pairs).
Pairs of several sources combine by concatenating their files: their ids never collide.

Memory: the input is streamed one image group at a time (caption and score emit each image's records
together). With input_order="any", records are first spilled to disk in buckets by image hash, so memory
is bounded by one bucket, not by the input.
"""

import enum
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from clipdpo_cli.io.errors import BadRecord, UsageError
from clipdpo_cli.io.groups import groups_by_image
from clipdpo_cli.io.records import id_key, make_id, require
from clipdpo_cli.io.setting import setting
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.io.values import enum_value, none_or_float
from clipdpo_cli.stages.filter import word_count

EMPTY_CAPTION = "empty caption"
EMPTY_ANSWER = "empty answer"


class PairSource(str, enum.Enum):
    ranked = "ranked"
    injected = "injected"
    noised = "noised"


SOURCES = tuple(m.value for m in PairSource)


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
    fuse_field: str | None = setting(
        None, "Rank-fuse the score with this field among each image's captions (CSR): alpha x rank(score) "
        "+ (1 - alpha) x rank(FIELD), ranks (n - i)/n best first; e.g. lvlm_logp from score --scorer "
        "lvlm. Margins are then in rank units (use e.g. --min-margin 0).", show_default=False,
    )  # fmt: skip
    fuse_alpha: float = setting(0.9, "With --fuse-field: the weight of the score's rank (CSR's clip_alpha).")
    source: str = setting(
        "ranked",
        "Where the rejected answer comes from: ranked (CLIP-ranked captions of an image, the paper's), "
        "injected (`perturb` variants against their trusted original; POVID) or noised (captions of "
        "`caption --image-noise` against the clean image's caption of the same prompt; POVID).",
        cli_type=PairSource, cli_default=PairSource.ranked, parse=enum_value,
    )  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    """What pairing needs of one caption record (never the whole record)."""

    id: Any  # a JSON value: a string, or e.g. an integer (COCO-style ids)
    text: str
    score: float
    words: int
    prompt: str
    scorer: str | None = None  # the record's `scorer` (score's field): carried into the pair
    fuse: float | None = None  # the record's fuse_field value (rank fusion)


def ranks(values: list[float]) -> list[float]:
    """(n - i) / n for the value in position i of `values` sorted highest first: the highest 1, the lowest
    1/n; equal values share the mean of their positions' ranks."""
    n = len(values)
    order = sorted(range(n), key=lambda k: -values[k])
    out = [0.0] * n
    start = 0
    while start < n:
        end = start
        while end + 1 < n and values[order[end + 1]] == values[order[start]]:
            end += 1
        shared = sum((n - i) / n for i in range(start, end + 1)) / (end - start + 1)
        for i in range(start, end + 1):
            out[order[i]] = shared
        start = end + 1
    return out


def rank_fuse(primary: list[float], secondary: list[float], alpha: float) -> list[float]:
    """alpha * ranks(primary) + (1 - alpha) * ranks(secondary), element by element (CSR's fusion)."""
    return [alpha * a + (1 - alpha) * b for a, b in zip(ranks(primary), ranks(secondary), strict=True)]


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
        if a.text == b.text:  # the same caption twice (sampled again, or under another prompt) is no pair
            continue
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
    fuse = None
    if rules.fuse_field is not None:
        fuse = float(require(record, rules.fuse_field, "number", hint=" (run `clipdpo score --scorer lvlm`)"))
    return Candidate(
        record["id"], text, float(score), word_count(text), prompt if isinstance(prompt, str) else "",
        scorer if isinstance(scorer, str) else None, fuse,
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
    if rules.fuse_field is not None:
        fused = rank_fuse([c.score for c in captions], [c.fuse or 0.0 for c in captions], rules.fuse_alpha)
        captions = [replace(c, score=round(f, 6)) for c, f in zip(captions, fused, strict=True)]
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


def check_fusion(rules: PairSettings) -> None:
    """Rank fusion's settings: alpha in [0, 1], and a margin a fused score (in (0, 1]) can pass."""
    if rules.fuse_field is None:
        return
    if not 0.0 <= rules.fuse_alpha <= 1.0:
        raise UsageError(f"--fuse-alpha must be between 0 and 1, got {rules.fuse_alpha:g}")
    if rules.min_margin >= 1.0:
        raise UsageError(
            f"--fuse-field: fused scores are ranks in (0, 1], so --min-margin {rules.min_margin:g} leaves no "
            "pair: pass a margin in rank units, e.g. --min-margin 0"
        )


def pair_records(
    records: Iterable[dict[str, Any]], rules: PairSettings, ctx: StageContext | None = None
) -> Iterator[dict[str, Any]]:
    """DPO pair records from scored (and filtered) caption and QA records; with `rules.source` "injected"
    or "noised", from perturb's variants (injected_pairs) or clean and noised captions (noised_pairs)."""
    ctx = ctx or StageContext("pair")
    check_fusion(rules)
    if rules.source == "injected":
        yield from injected_pairs(records, rules, ctx)
        return
    if rules.source == "noised":
        yield from noised_pairs(records, rules, ctx)
        return
    if rules.source != "ranked":
        raise ValueError(f"source must be one of {SOURCES}, not {rules.source!r}")
    groups = groups_by_image(records, ctx, rules.input_order)
    for image, group in groups:
        yield from pairs_for_image(image, group, rules, ctx)


# ---- POVID's sources: injected hallucinations, noised images ----------------------------------------

ORIGINAL = "original (the chosen side of its variants' pairs)"
NOT_A_CAPTION = "not a caption (QA records pair under --source ranked)"


def injected_pairs(
    records: Iterable[dict[str, Any]], rules: PairSettings, ctx: StageContext
) -> Iterator[dict[str, Any]]:
    """One pair per `perturb` variant: chosen = the trusted answer it was made from (`original`), rejected =
    the variant (`text`), the prompt the records carry (or rules.prompt). The originals themselves
    (`hallucination: "none"`) pair through their variants and are counted as dropped. A variant whose id
    came already (duplicated input) is counted as "duplicate id" and left out."""
    seen: set[Any] = set()
    for record in records:
        try:
            kind = require(record, "hallucination", hint=" (run `clipdpo perturb` first)")
            if kind == "none":
                ctx.drop(record, ORIGINAL)
                continue
            chosen, rejected = require(record, "original"), require(record, "text")
            image = require(record, "image")
            if record.get("id") is None:
                raise BadRecord("missing field 'id'", reason="missing field 'id'")
        except BadRecord as exc:
            ctx.bad(record, exc)
            continue
        if not (chosen.strip() and rejected.strip()):
            ctx.drop(record, EMPTY_CAPTION)
            continue
        origin = record.get("from")
        prompt = record.get("prompt")
        pid = make_id("pair", origin, record["id"])
        if pid in seen:
            ctx.duplicate(record)
            continue
        seen.add(pid)
        yield {
            "id": pid,
            "image": image,
            "kind": "injected",
            "prompt": rules.prompt if rules.prompt is not None else prompt if isinstance(prompt, str) else "",
            "chosen": chosen,
            "rejected": rejected,
            "chosen_score": None,
            "rejected_score": None,
            "margin": None,
            "from": [origin, record["id"]],
            "hallucination": kind,
            **{k: record[k] for k in ("method", "perturb_model") if isinstance(record.get(k), str)},
        }


def noise_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """A caption's `image_noise` (caption --image-noise) when its image was noised (steps > 0), else None."""
    noise = record.get("image_noise")
    if isinstance(noise, dict) and isinstance(noise.get("steps"), int) and noise["steps"] > 0:
        return noise
    return None


def noised_pairs(
    records: Iterable[dict[str, Any]], rules: PairSettings, ctx: StageContext
) -> Iterator[dict[str, Any]]:
    """Per image, each caption of a noised image against the clean image's caption of the same prompt and
    sample number: chosen = clean, rejected = noised. Kept when the texts differ and the lengths are
    similar (max_length_diff); at most `per_image` per image, the pairs of smallest id (a hash: a fixed
    choice that favours no prompt)."""
    for image, group in groups_by_image(records, ctx, rules.input_order):
        clean: dict[tuple[str, Any], dict[str, Any]] = {}
        noised: list[tuple[tuple[str, Any], dict[str, Any]]] = []
        for record in group:
            if record.get("kind") == "qa":
                ctx.drop(record, NOT_A_CAPTION)
                continue
            try:
                text, prompt = require(record, "text"), require(record, "prompt")
            except BadRecord as exc:
                ctx.bad(record, exc)
                continue
            if not text.strip():
                ctx.drop(record, EMPTY_CAPTION)
                continue
            key = (prompt, record.get("sample", 0))
            if noise_of(record) is not None:
                noised.append((key, record))
            elif key in clean:
                ctx.drop(record, "another clean caption of its prompt and sample")
            else:
                clean[key] = record
        candidates = []
        paired_clean: set[tuple[str, Any]] = set()
        for key, record in noised:
            partner = clean.get(key)
            if partner is None:
                ctx.drop(record, "no clean caption of its prompt and sample")
                continue
            paired_clean.add(key)
            a, b = partner["text"].strip(), record["text"].strip()
            if a == b:
                ctx.drop(record, "noised caption same as the clean one")
            elif not lengths_similar(word_count(a), word_count(b), rules.max_length_diff):
                ctx.drop(record, f"lengths differ by more than {rules.max_length_diff:g}")
            else:
                candidates.append((make_id("pair", partner["id"], record["id"]), partner, record))
        for key, record in clean.items():
            if key not in paired_clean:
                ctx.drop(record, "no noised caption of its prompt and sample")
        candidates.sort(key=lambda c: c[0])
        for _, _, record in candidates[rules.per_image :]:
            ctx.drop(record, "over --per-image")
        for pid, partner, record in candidates[: rules.per_image]:
            prompt = rules.prompt if rules.prompt is not None else partner["prompt"]
            yield {
                "id": pid,
                "image": image,
                "kind": "noised",
                "prompt": prompt,
                "chosen": partner["text"],
                "rejected": record["text"],
                "chosen_score": partner.get(rules.score_field),
                "rejected_score": record.get(rules.score_field),
                "margin": None,
                "from": [partner["id"], record["id"]],
                "image_noise": noise_of(record),
            }
