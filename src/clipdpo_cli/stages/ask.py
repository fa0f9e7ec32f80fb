"""Per-image questions with a positive and a negative answer (paper Sec. 4.1, "Per-Image Questions").

The captions of one image are given to a text LLM, which is asked for `questions` questions about the image,
each with a short answer consistent with the captions (positive) and a plausible but wrong one (negative),
as JSON. The reply is parsed leniently (code fences, text around the JSON, a bare list); an unusable reply
is dropped with a reason (and goes to --rejects), never a crash.

Output: one record per question, {id, image, kind: "qa", question, answer_pos, answer_neg, text, from, model},
where text = qa_to_caption(question, answer_pos) (the synthetic caption `score` checks) and from lists the
caption ids. A question's id is make_id("qa", image, model, caption ids, seed, sampling settings, index),
known before generation, so --resume skips images already done.
"""

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import BadRecord
from clipdpo_cli.io.groups import groups_by_image
from clipdpo_cli.io.records import make_id, require
from clipdpo_cli.io.setting import setting
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.models.generator import TextGenerator
from clipdpo_cli.models.sampling import job_seed
from clipdpo_cli.qa import qa_to_caption
from clipdpo_cli.stages.batched import Group, batching, llm_batch_runner, run_in_batches

SYSTEM_PROMPT = (
    "You write question-answer pairs about images for a visual question answering dataset. "
    "You only know an image through its descriptions, and you always reply with JSON only."
)

USER_PROMPT = """Here are {n_captions} descriptions of the same image:
{captions}

Write {n} different questions about this image that the descriptions answer. Ask about visible objects, \
their attributes (color, size, material), counts, actions and positions, not about the descriptions \
themselves. For each question give:
- "answer_pos": a short correct answer, consistent with the descriptions;
- "answer_neg": a plausible but wrong answer of the same kind and length (another color, object, number...).

Reply with JSON only, in exactly this form:
{{"questions": [{{"question": "...", "answer_pos": "...", "answer_neg": "..."}}]}}"""

# Fields of a caption record that describe that one caption; the others, when equal for every caption of an
# image, are passed on to its questions (e.g. a category or the user's own metadata).
CAPTION_FIELDS = frozenset(
    {"id", "kind", "text", "prompt", "model", "sample", "temperature", "top_p", "max_new_tokens", "seed",
     "clip_score", "scorer", "question_score", "from", "reject_reason"}
)  # fmt: skip

_KEYS = {
    "question": ("question", "q"),
    "answer_pos": ("answer_pos", "positive", "positive_answer", "answer", "correct_answer"),
    "answer_neg": ("answer_neg", "negative", "negative_answer", "wrong_answer", "incorrect_answer"),
}
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


@dataclass(frozen=True)
class AskSettings:
    """What `ask` asks (each option field is also a `clipdpo ask` option; the sampling fields are the
    generation group's, models/generation_settings.py, with these defaults)."""

    questions: int = setting(2, "Questions asked per image.", min=1)
    max_captions: int = setting(5, "Captions of an image shown to the LLM (first N).", min=1)
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 256
    seed: int | None = None
    batch_size: int = 8
    input_order: str = setting(  # or "any"
        "grouped", shared=True, parse=lambda order: getattr(order, "value", order)
    )


@dataclass(frozen=True)
class AskJob:
    key: str
    prompt: str
    seed: int | None
    caption_ids: tuple[str, ...]


class MalformedAnswer(ValueError):
    """The LLM's reply holds no usable question list; the message is the drop reason."""


def json_values(text: str) -> Iterator[Any]:
    """Every JSON object or array that starts somewhere in `text` (left to right), fenced blocks first."""
    decoder = json.JSONDecoder()
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for chunk in candidates:
        for match in re.finditer(r"[\[{]", chunk):
            try:
                value, _ = decoder.raw_decode(chunk, match.start())
            except json.JSONDecodeError:
                continue
            yield value


def _field(item: dict[str, Any], name: str) -> str | None:
    for key in _KEYS[name]:
        value = item.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def parse_questions(text: str, limit: int) -> list[dict[str, str]]:
    """Up to `limit` {question, answer_pos, answer_neg} from an LLM reply; MalformedAnswer if there is none.

    Accepts {"questions": [...]}, a bare list, or one object; in a code fence or among other text. Items
    missing a field, with equal answers, or repeating a question are left out.
    """
    found_json = False
    for value in json_values(text):
        found_json = True
        if isinstance(value, dict):
            items = next((v for v in value.values() if isinstance(v, list)), None)
            items = items if items is not None else [value]
        else:
            items = value
        out: list[dict[str, str]] = []
        seen: set[str] = set()
        for item in items:
            if not isinstance(item, dict):
                continue
            question = _field(item, "question")
            pos, neg = _field(item, "answer_pos"), _field(item, "answer_neg")
            if not question or not pos or not neg or pos.lower() == neg.lower():
                continue
            if question.lower() in seen:
                continue
            seen.add(question.lower())
            out.append({"question": question, "answer_pos": pos, "answer_neg": neg})
        if out:
            return out[:limit]
    raise MalformedAnswer("LLM reply without valid questions" if found_json else "LLM reply not JSON")


def build_prompt(captions: list[str], n: int) -> str:
    listed = "\n".join(f"{i}. {c}" for i, c in enumerate(captions, 1))
    return USER_PROMPT.format(n_captions=len(captions), captions=listed, n=n)


def shared_fields(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Fields other than the caption's own that every record of the group has with the same value."""
    first = records[0]
    return {
        k: v
        for k, v in first.items()
        if k not in CAPTION_FIELDS and k != "image" and all(r.get(k, object()) == v for r in records[1:])
    }


def _captions(records: list[dict[str, Any]], limit: int, ctx: StageContext) -> list[dict]:
    """The usable caption records of one image (text present, duplicates removed), at most `limit`."""
    out, seen = [], set()
    for record in records:
        if record.get("kind", "caption") != "caption":
            continue
        try:
            text = require(record, "text")
        except BadRecord as exc:
            ctx.bad(record, exc)
            continue
        if text.strip() and text.strip() not in seen:
            seen.add(text.strip())
            out.append(record)
    return out[:limit]


def ask_records(
    records: Iterable[dict[str, Any]],
    llm: TextGenerator,
    settings: AskSettings,
    ctx: StageContext | None = None,
) -> Iterator[dict[str, Any]]:
    """Question records from caption records (grouped by image) with `llm` (a models.llm.Llm)."""
    ctx = ctx or StageContext("ask")
    if settings.questions < 1 or settings.max_captions < 1:
        raise ValueError("questions and max_captions must be >= 1")
    model = llm.name
    grouped = groups_by_image(records, ctx, settings.input_order)

    def qa_ids(image: str, caption_ids: tuple[str, ...]) -> list[str]:
        return [
            make_id("qa", image, model, *caption_ids, settings.seed, settings.temperature, settings.top_p,
                    settings.max_new_tokens, settings.questions, k)
            for k in range(settings.questions)
        ]  # fmt: skip

    def groups() -> Iterator[Group]:
        for image, group in grouped:
            captions = _captions(group, settings.max_captions, ctx)
            if not captions:
                if any(r.get("kind", "caption") == "caption" for r in group):
                    ctx.drop({"image": image, "from": [r.get("id") for r in group]}, "image without captions")
                continue
            caption_ids = tuple(r["id"] for r in captions)
            ids = qa_ids(image, caption_ids)
            if all(i in ctx.done for i in ids):
                ctx.stats.resumed += len(ids)
                continue
            key = make_id("ask", *ids)
            seed = job_seed(settings.seed, key)
            prompt = build_prompt([r["text"].strip() for r in captions], settings.questions)
            record = {"image": image, **shared_fields(captions)}
            yield Group(record, [AskJob(key, prompt, seed, caption_ids)], payload=ids)

    run_batch = llm_batch_runner(llm, settings, SYSTEM_PROMPT)

    size, in_flight = batching(llm, settings.batch_size)
    for group in run_in_batches(groups(), size, run_batch, in_flight=in_flight):
        if group.error is not None:  # a request the server kept failing (--engine openai)
            ctx.bad({"id": group.jobs[0].key, **group.record}, group.error)
            continue
        job, reply, ids = group.jobs[0], group.results[0], group.payload
        image = group.record["image"]
        try:
            questions = parse_questions(reply, settings.questions)
        except MalformedAnswer as exc:
            ctx.drop({"id": job.key, "image": image, "kind": "qa_reply", "reply": reply,
                      "from": list(job.caption_ids), "model": model}, str(exc))  # fmt: skip
            continue
        for qid, qa in zip(ids, questions, strict=False):
            yield {
                "id": qid,
                **group.record,
                "kind": "qa",
                "question": qa["question"],
                "answer_pos": qa["answer_pos"],
                "answer_neg": qa["answer_neg"],
                "text": qa_to_caption(qa["question"], qa["answer_pos"]),
                "from": list(job.caption_ids),
                "model": model,
            }
