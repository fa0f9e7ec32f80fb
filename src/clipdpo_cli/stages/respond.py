"""Responses of an LVLM to queries: one output record per query record {id, image, prompt, ...}.

The input record is kept and gets the answer:
    {..., "response": text, "model": name, "mode": "describe"}
A query marked `"yes_no": true` (a benchmark's yes/no question) is answered by `--yes-no`:
  prob      the next-token probabilities of Yes and No (each sums the capitalised and the lower-case word,
            softmax over the vocabulary, not renormalised): response "Yes" when p_yes > p_no, else "No",
            with "p_yes", "p_no" and "mode": "yes_no_prob";
  generate  a short free answer (`yes_no_max_new_tokens`), its leading yes/no as the response
            (normalize_answer) and the raw "text", "mode": "yes_no_generate".

Queries are answered in batches of `batch_size` (consecutive queries of one kind: a description batch never
holds a yes/no question), images decoded ahead in threads (stages.batched), records written in input order.
Sampling with a seed: an integer id adds itself to the seed (AMBER's question ids, as before), any other id
derives its own seed from the seed and the id (models.sampling.job_seed), so a response depends on neither
the batch nor the shard.

Benchmarks feed this stage through an exporter of their queries (eval/amber/queries.py) and score its output
(eval/amber/evaluate.py); `clipdpo respond` is the command.
"""

import enum
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import BadRecord
from clipdpo_cli.io.records import require
from clipdpo_cli.io.setting import setting
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.models.generator import ImageTextGenerator
from clipdpo_cli.models.sampling import job_seed
from clipdpo_cli.stages.batched import Group, batching, prefetch_images, run_in_batches

YES_NO_MODES = ("prob", "generate")


class YesNo(str, enum.Enum):
    prob = "prob"
    generate = "generate"


YES_NO_CANDIDATES = ("Yes", "No", "yes", "no")
_YES_NO = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


def normalize_answer(text: str) -> str:
    """'Yes'/'No' when the text starts with the word yes or no in any case ("yes.", "No, there is ...",
    " YES"); anything else unchanged."""
    match = _YES_NO.match(text)
    if not match:
        return text
    return "Yes" if match.group(1).lower() == "yes" else "No"


@dataclass(frozen=True)
class RespondSettings:
    """How `respond` answers (each option field is also a `clipdpo respond` option; the sampling fields are
    the generation group's, models/generation_settings.py, with these defaults: greedy)."""

    yes_no: str = setting(
        "prob",
        "Yes/no queries: compare the next-token probabilities of Yes and No (prob), or generate freely and "
        "take the leading yes/no (generate).",
        cli_type=YesNo, cli_default=YesNo.prob, parse=lambda mode: getattr(mode, "value", mode),
    )  # fmt: skip
    max_new_tokens: int = 512
    yes_no_max_new_tokens: int = setting(
        8, "Token budget of a free yes/no answer (--yes-no generate).", min=1
    )
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    batch_size: int = 8
    image_root: str | None = setting(None, shared=True)  # commands/clip_options.py ImageRootOpt
    workers: int = setting(4, shared=True)  # threads decoding images ahead (WorkersOpt)
    response_field: str = "response"  # "text" makes the answers caption records (eval-zeroshot's cache)

    def __post_init__(self) -> None:
        if self.yes_no not in YES_NO_MODES:
            raise ValueError(f"yes_no must be one of {YES_NO_MODES}, not {self.yes_no!r}")


def row_seed(seed: int | None, rid: Any) -> int | None:
    """A query's own sampling seed: seed + id for an integer id, else derived from the seed and the id."""
    if seed is None:
        return None
    if isinstance(rid, int) and not isinstance(rid, bool):
        return seed + rid
    return job_seed(seed, str(rid))


def is_yes_no(record: dict[str, Any]) -> bool:
    return record.get("yes_no") is True


def _mode(record: dict[str, Any], settings: RespondSettings) -> str:
    if not is_yes_no(record):
        return "describe"
    return "yes_no_prob" if settings.yes_no == "prob" else "yes_no_generate"


def yes_no_probs(row: dict[str, float]) -> tuple[float, float]:
    """(p_yes, p_no) of one next_token_probs row: each word capitalised and lower-case together."""
    return row["Yes"] + row["yes"], row["No"] + row["no"]


def respond_records(
    records: Iterable[dict[str, Any]],
    lvlm: ImageTextGenerator,
    settings: RespondSettings,
    ctx: StageContext | None = None,
    model: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Each query record with its response by `lvlm` (an ImageTextGenerator: generate, next_token_probs);
    `model` is the name written in the records (default: the name the LVLM was loaded by)."""
    ctx = ctx or StageContext("respond")
    model = model or lvlm.name
    field = settings.response_field

    def queries() -> Iterator[tuple[dict[str, Any], str]]:
        for record in records:
            try:
                prompt = require(record, "prompt")
            except BadRecord as exc:
                ctx.bad(record, exc)
                continue
            yield record, prompt

    def groups() -> Iterator[Group]:
        for record, prompt, image in prefetch_images(queries(), settings.image_root, settings.workers):
            if isinstance(image, BadRecord):
                ctx.bad(record, image)
                continue
            yield Group(record, [prompt], payload=image)

    def run_batch(items: list[tuple[Group, str]]) -> list[dict[str, Any]]:
        images, prompts = [g.payload for g, _ in items], [p for _, p in items]
        mode = _mode(items[0][0].record, settings)
        if mode == "yes_no_prob":
            rows = lvlm.next_token_probs(images, prompts, candidates=list(YES_NO_CANDIDATES))
            out = []
            for row in rows:
                p_yes, p_no = yes_no_probs(row)
                answer = "Yes" if p_yes > p_no else "No"
                out.append({"response": answer, "mode": mode, "p_yes": round(p_yes, 6),
                            "p_no": round(p_no, 6)})  # fmt: skip
            return out
        budget = settings.max_new_tokens if mode == "describe" else settings.yes_no_max_new_tokens
        seeds = [row_seed(settings.seed, g.record.get("id")) for g, _ in items]
        seeds = None if settings.seed is None else seeds
        texts = lvlm.generate(
            images, prompts, max_new_tokens=budget, temperature=settings.temperature, top_p=settings.top_p,
            seed=seeds,
        )  # fmt: skip
        if mode == "describe":
            return [{"response": text.strip(), "mode": mode} for text in texts]
        return [{"response": normalize_answer(text.strip()), "mode": mode, "text": text} for text in texts]

    # one kind per batch: consecutive queries of the same kind are batched together, in input order
    size, in_flight = batching(lvlm, settings.batch_size)
    for _, run in itertools.groupby(groups(), key=lambda g: is_yes_no(g.record)):
        for group in run_in_batches(run, size, run_batch, in_flight=in_flight):
            group.payload = None  # release the image
            if group.error is not None:  # a request the server kept failing (--engine openai)
                ctx.bad(group.record, group.error)
                continue
            answer = group.results[0]
            yield {**group.record, field: answer.pop("response"), "model": model, **answer}
