"""Hallucinated variants of trusted captions, for the paper's Sec. 3.1 / Fig. 2 probe.

Each input caption is written back as is (`hallucination: "none"`), followed by one variant per requested
hallucination type, each with exactly one wrong fact:

- existence: an object the caption does not mention is added ("..., and a dog.");
- attribute: one color word becomes another color, or else one number (two..ten, 2..10) another number;
- relation: one spatial relation is swapped (on <-> under, left <-> right, in front of <-> behind, ...).

`--method rules` does this with the deterministic word rules below (the word or object is chosen by a RNG
seeded from --seed, the record id and the type); `--method llm` asks a chat LLM once per type, with the
prompts of data/perturb_prompts.json, for JSON {"caption": "..."}. A type the rules cannot apply (no color
or number word, no relation phrase) and an unusable LLM reply are dropped with a reason (and go to
--rejects). A variant's id is make_id("perturb", original id, type, method), so --resume skips it.
"""

import json
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from clipdpo_cli.io.errors import BadRecord, InputError, UsageError
from clipdpo_cli.io.records import make_id, require
from clipdpo_cli.io.setting import setting
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.io.textfiles import read_text_file
from clipdpo_cli.models.generator import TextGenerator
from clipdpo_cli.models.sampling import job_seed
from clipdpo_cli.stages.ask import json_values
from clipdpo_cli.stages.batched import Group, batching, llm_batch_runner, run_in_batches

TYPES = ("existence", "attribute", "relation")

SYSTEM_PROMPT = (
    "You edit image descriptions to make test data for hallucination detection. You change exactly one "
    "fact as asked, keep everything else word for word, and always reply with JSON only."
)

COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray",
          "grey")  # fmt: skip
# Replacements: no "grey" (a synonym of gray) and no "orange" (it would need "an").
_NEW_COLORS = tuple(c for c in COLORS if c not in ("grey", "orange"))
NUMBER_WORDS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

# Each phrase and what it becomes; longer phrases are matched first ("on top of" before "on").
RELATIONS = {
    "in front of": "behind",
    "behind": "in front of",
    "on top of": "underneath",
    "underneath": "on top of",
    "next to": "far from",
    "beside": "far from",
    "near": "far from",
    "far from": "next to",
    "above": "below",
    "below": "above",
    "beneath": "above",
    "inside": "outside",
    "outside": "inside",
    "on": "under",
    "under": "on",
    "left": "right",
    "right": "left",
}


def _words(phrase: str) -> str:
    """A regex for a phrase as whole words, any whitespace between them."""
    return r"\s+".join(re.escape(w) for w in phrase.split())


def _whole(alternatives: Iterable[str]) -> re.Pattern[str]:
    return re.compile(r"(?<![\w-])(?:" + "|".join(alternatives) + r")(?![\w-])", re.I)


_COLOR_RE = _whole(COLORS)
_NUMBER_WORD_RE = _whole(NUMBER_WORDS)
_DIGITS_RE = re.compile(r"(?<![\w.,:/-])(?:10|[2-9])(?![\w:/-]|[.,]\d)")
_RELATION_RE = _whole(_words(p) for p in sorted(RELATIONS, key=lambda p: (-len(p.split()), -len(p))))
_ENDING = re.compile(r"^(.*?)([.!]*)\s*$", re.S)


class UnusableReply(ValueError):
    """An LLM reply without a usable caption; the message is the drop reason."""


def _same_case(source: str, word: str) -> str:
    if len(source) > 1 and source.isupper():
        return word.upper()
    return word[:1].upper() + word[1:] if source[:1].isupper() else word


def _replace_one(text: str, spans: list[tuple[int, int, list[str]]], rng: random.Random) -> str | None:
    """`text` with one (start, end, candidates) span, chosen by `rng`, replaced by one of its candidates."""
    if not spans:
        return None
    start, end, candidates = rng.choice(spans)
    return text[:start] + _same_case(text[start:end], rng.choice(candidates)) + text[end:]


def _canonical_color(word: str) -> str:
    return "gray" if word.lower() == "grey" else word.lower()


def change_attribute(caption: str, rng: random.Random) -> str | None:
    """One color word replaced by another color, or else one number (2..10, words or digits) by another."""
    spans = [
        (m.start(), m.end(), [c for c in _NEW_COLORS if c != _canonical_color(m.group())])
        for m in _COLOR_RE.finditer(caption)
        if not (m.group().lower() == "orange" and caption[max(0, m.start() - 3) : m.start()].lower() == "an ")
    ]
    if not spans:
        spans = [
            (m.start(), m.end(), [n for n in NUMBER_WORDS if n != m.group().lower()])
            for m in _NUMBER_WORD_RE.finditer(caption)
        ] + [
            (m.start(), m.end(), [str(n) for n in range(2, 11) if str(n) != m.group()])
            for m in _DIGITS_RE.finditer(caption)
        ]
    return _replace_one(caption, spans, rng)


def swap_relation(caption: str, rng: random.Random) -> str | None:
    """One spatial relation phrase (RELATIONS) replaced by its opposite, case kept."""
    spans = [
        (m.start(), m.end(), [RELATIONS[" ".join(m.group().lower().split())]])
        for m in _RELATION_RE.finditer(caption)
    ]
    return _replace_one(caption, spans, rng)


def mentions(caption: str, noun: str) -> bool:
    """Whether `caption` mentions `noun` (whole words, singular or plural with -s / -es, any case)."""
    return re.search(r"(?<![\w-])" + _words(noun) + r"(?:e?s)?(?![\w-])", caption, re.I) is not None


def add_object(caption: str, objects: Sequence[str], rng: random.Random) -> str | None:
    """The caption with ", and a <object>" before its final period, for an object it does not mention."""
    absent = [o for o in objects if not mentions(caption, o)]
    if not absent:
        return None
    noun = rng.choice(absent)
    body, end = _ENDING.match(caption).groups()  # type: ignore[union-attr]
    article = "an" if noun[0] in "aeiou" else "a"
    return f"{body.rstrip(' ,;:')}, and {article} {noun}{end}"


def rule_rng(seed: int | None, record_id: str, kind: str) -> random.Random:
    """The random stream of one rule variant: fixed by --seed, the original's id and the type."""
    return random.Random(int(make_id("perturb-rules", seed, record_id, kind), 16))


def rule_variant(caption: str, kind: str, rng: random.Random, objects: Sequence[str] = ()) -> str | None:
    """The rule-made variant of `caption` of hallucination type `kind`; None if the rule has nothing to do."""
    if kind == "existence":
        return add_object(caption, objects, rng)
    if kind == "attribute":
        return change_attribute(caption, rng)
    if kind == "relation":
        return swap_relation(caption, rng)
    raise ValueError(f"unknown hallucination type {kind!r}")


_NOTHING_TO_CHANGE = {
    "existence": "every object already in the caption (existence)",
    "attribute": "no color or number word (attribute)",
    "relation": "no relation phrase (relation)",
}


def _read_text(path: str | None, packaged: str, what: str) -> tuple[str, str]:
    if path is None:
        return resources.files("clipdpo_cli").joinpath("data", packaged).read_text(encoding="utf-8"), packaged
    return read_text_file(path, f"{what} file"), path


def read_objects(path: str | None = None) -> list[str]:
    """Object nouns, one per line ('#' comments, blanks and repeats ignored); default: the packaged list."""
    text, where = _read_text(path, "perturb_objects.txt", "objects")
    lines = (" ".join(line.split("#", 1)[0].lower().split()) for line in text.splitlines())
    objects = list(dict.fromkeys(line for line in lines if line))
    if not objects:
        raise InputError(f"no objects in {where}")
    return objects


def read_prompts(path: str | None = None) -> dict[str, str]:
    """{type: prompt template with {caption}} from a JSON file; default: the packaged prompts."""
    text, where = _read_text(path, "perturb_prompts.json", "prompts")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(f"cannot read prompts file {where}: {exc}") from None
    ok = isinstance(data, dict) and all(
        k in TYPES and isinstance(v, str) and "{caption}" in v for k, v in data.items()
    )
    if not ok or not data:
        raise InputError(
            f"prompts file {where} must map hallucination types ({', '.join(TYPES)}) to prompt templates "
            'holding {caption}, e.g. {"attribute": "Change one color in: {caption} ..."}'
        )
    return data


def parse_types(value: str) -> tuple[str, ...]:
    """'existence,attribute' -> ("existence", "attribute"); UsageError on an unknown or missing type."""
    types = tuple(dict.fromkeys(t.strip().lower() for t in value.split(",") if t.strip()))
    unknown = [t for t in types if t not in TYPES]
    if unknown or not types:
        raise UsageError(f"--types takes a comma-separated subset of {','.join(TYPES)}, got {value!r}")
    return types


def _normalised(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def parse_caption(reply: str, original: str) -> str:
    """The "caption" of an LLM reply (JSON, maybe fenced or among prose); UnusableReply if there is none."""
    found_json = same = False
    for value in json_values(reply):
        found_json = True
        if not isinstance(value, dict):
            continue
        text = value.get("caption")
        if not isinstance(text, str) or not text.strip():
            continue
        if _normalised(text) == _normalised(original):
            same = True
            continue
        return text.strip()
    if same:
        raise UnusableReply("LLM caption same as the original")
    raise UnusableReply("LLM reply without a caption" if found_json else "LLM reply not JSON")


def _objects_option(path: str | None) -> tuple[str, ...] | None:
    return None if path is None else tuple(read_objects(path))


def _prompts_option(path: str | None) -> dict[str, str] | None:
    return None if path is None else read_prompts(path)


@dataclass(frozen=True)
class PerturbSettings:
    """What `perturb` makes (each option field is also a `clipdpo perturb` option; the sampling fields are the
    generation group's, models/generation_settings.py, with these defaults). On the command line a file
    option not given parses to None: the command then keeps the packaged default."""

    types: tuple[str, ...] = setting(
        TYPES, "Hallucination types to make, comma-separated.",
        cli_type=str, cli_default=",".join(TYPES), parse=parse_types,
    )  # fmt: skip
    text_field: str = setting("text", "The field holding the trusted caption.", flags=("--field",))
    seed: int | None = setting(
        None,
        "Rules: picks the word or object changed (the output is the same every run, with or without it). "
        "LLM: each variant is sampled from its own stream seeded by this and its id.",
    )
    objects: tuple[str, ...] = setting(  # rules
        help="Rules: file of object nouns, one per line, replacing the packaged ~50 COCO objects.",
        default_factory=lambda: tuple(read_objects()),
        cli_type=str | None, cli_default=None, parse=_objects_option, show_default=False,
    )  # fmt: skip
    prompts: Mapping[str, str] = setting(  # llm
        help="LLM: JSON {type: prompt template with {caption}} replacing the packaged prompts.",
        default_factory=read_prompts,
        cli_type=str | None, cli_default=None, parse=_prompts_option, show_default=False,
    )  # fmt: skip
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 256
    batch_size: int = 8


@dataclass(frozen=True)
class PerturbJob:
    kind: str
    id: str
    prompt: str
    seed: int | None


def variant_id(original_id: str, kind: str, method: str) -> str:
    return make_id("perturb", original_id, kind, method)


def _captions(
    records: Iterable[dict[str, Any]], settings: PerturbSettings, ctx: StageContext
) -> Iterator[tuple[dict[str, Any], str]]:
    """(record, its stripped caption) for each usable record; others go to ctx.bad / ctx.drop."""
    for record in records:
        try:
            require(record, "id")
            require(record, "image")
            caption = require(record, settings.text_field).strip()
        except BadRecord as exc:
            ctx.bad(record, exc)
            continue
        if not caption:
            ctx.drop(record, "empty caption")
            continue
        yield record, caption


def _original(record: dict[str, Any], caption: str) -> dict[str, Any]:
    rid = record["id"]
    return {**record, "id": rid, "text": caption, "original": caption, "hallucination": "none", "from": rid}


def _variant(
    record: dict[str, Any], caption: str, kind: str, text: str, method: str, model: str | None = None
) -> dict[str, Any]:
    rid = record["id"]
    out = {**record, "id": variant_id(rid, kind, method), "text": text, "original": caption,
           "hallucination": kind, "from": rid, "method": method}  # fmt: skip
    if model is not None:
        out["perturb_model"] = model
    return out


def perturb_records(
    records: Iterable[dict[str, Any]],
    settings: PerturbSettings | None = None,
    ctx: StageContext | None = None,
    llm: TextGenerator | None = None,
) -> Iterator[dict[str, Any]]:
    """Each record's caption, then its hallucinated variants: by the rules, or by `llm` (a models.llm.Llm)."""
    settings = settings or PerturbSettings()
    ctx = ctx or StageContext("perturb")
    unknown = [t for t in settings.types if t not in TYPES]
    if unknown or not settings.types:
        raise ValueError(f"types must be a non-empty subset of {TYPES}, got {settings.types}")
    if llm is None:
        return _by_rules(records, settings, ctx)
    missing = [t for t in settings.types if t not in settings.prompts]
    if missing:
        raise InputError(f"the prompts have no template for {', '.join(missing)}")
    return _by_llm(records, llm, settings, ctx)


def _by_rules(
    records: Iterable[dict[str, Any]], settings: PerturbSettings, ctx: StageContext
) -> Iterator[dict[str, Any]]:
    for record, caption in _captions(records, settings, ctx):
        yield _original(record, caption)
        for kind in settings.types:
            rng = rule_rng(settings.seed, record["id"], kind)
            text = rule_variant(caption, kind, rng, settings.objects)
            if text is None:
                ctx.drop({"id": variant_id(record["id"], kind, "rules"), "image": record["image"],
                          "text": caption, "hallucination": kind, "from": record["id"], "method": "rules"},
                         _NOTHING_TO_CHANGE[kind])  # fmt: skip
                continue
            yield _variant(record, caption, kind, text, "rules")


def _by_llm(
    records: Iterable[dict[str, Any]], llm: TextGenerator, settings: PerturbSettings, ctx: StageContext
) -> Iterator[dict[str, Any]]:
    model = llm.name

    def groups() -> Iterator[Group]:
        for record, caption in _captions(records, settings, ctx):
            jobs = []
            for kind in settings.types:
                vid = variant_id(record["id"], kind, "llm")
                if vid in ctx.done:
                    ctx.stats.resumed += 1
                    continue
                prompt = settings.prompts[kind].replace("{caption}", caption)
                jobs.append(PerturbJob(kind, vid, prompt, job_seed(settings.seed, vid)))
            yield Group(record, jobs, payload=caption)

    run_batch = llm_batch_runner(llm, settings, SYSTEM_PROMPT)

    size, in_flight = batching(llm, settings.batch_size)
    for group in run_in_batches(groups(), size, run_batch, in_flight=in_flight):
        if group.error is not None:  # a request the server kept failing (--engine openai)
            ctx.bad(group.record, group.error)
            continue
        record, caption = group.record, group.payload
        yield _original(record, caption)
        for job, reply in zip(group.jobs, group.results, strict=True):
            try:
                text = parse_caption(reply, caption)
            except UnusableReply as exc:
                ctx.drop({"id": job.id, "image": record["image"], "kind": "perturb_reply", "reply": reply,
                          "original": caption, "hallucination": job.kind, "from": record["id"],
                          "method": "llm", "perturb_model": model}, str(exc))  # fmt: skip
                continue
            yield _variant(record, caption, job.kind, text, "llm", model)
