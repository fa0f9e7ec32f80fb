"""CLIP scoring (paper Sec. 4.2): the scorer's similarity (100 x cosine of the image and text embeddings).

The text is a field of the record (`text` by default: a caption, or for an `ask` record the synthetic
caption built from its question and positive answer, i.e. the answer score) or a template filled from
the record's fields (`"a photo of {text}"`). Each distinct image is decoded and encoded once per chunk
(models.clip_images); the texts of a chunk are encoded together, sorted by length. Any image-text scorer
(models/scorer.py: open_clip, transformers) works; its `similarity` gives the score.

With `per_sentence` ("mean" or "min"), a text's score is the mean or the minimum of the scores of its parts,
each scored alone against the image: its sentences (`parts="sentence"`, io.text.sentences), or their
clauses (`parts="clause"`, io.text.clauses); a text without a part (empty) is scored whole. The parts of a
chunk are encoded together like whole texts.

`lvlm_score_records` is the other scorer (`score --scorer lvlm`, the paper's Fig. 2 baseline): the LVLM's
own log-likelihood of the text given the image and a prompt, through the project's one conversation
encoding, as the mean per token (`score_field`) and the sum (`score_field` + "_sum").
"""

import enum
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.io.records import require
from clipdpo_cli.io.setting import setting
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.io.values import enum_value
from clipdpo_cli.models.clip_images import encode_image_chunks
from clipdpo_cli.models.clip_registry import DEFAULT_MODEL
from clipdpo_cli.models.device import Precision
from clipdpo_cli.models.scorer import ImageTextScorer

if TYPE_CHECKING:
    from clipdpo_cli.models.generator import LikelihoodScorer
DECIMALS = 5


class Scorer(str, enum.Enum):
    clip = "clip"
    lvlm = "lvlm"


class PerSentence(str, enum.Enum):
    mean = "mean"
    min = "min"


class Parts(str, enum.Enum):
    sentence = "sentence"
    clause = "clause"


@dataclass(frozen=True)
class ScoreSettings:
    """What `clipdpo score` scores and how (each field but the last is also one of its options)."""

    model: str = setting(DEFAULT_MODEL, shared=True)
    field: str = setting(
        "text", "Record field holding the text to score (a qa record's `text` is its answer check)."
    )
    template: str | None = setting(
        None, "Score this text instead, filled from the record: 'a photo of {text}'.", show_default=False
    )
    scorer: str = setting(
        "clip", "clip: 100 x cosine of a CLIP model; lvlm: the LVLM's (-m) mean log-likelihood of the text "
        "given the image and --prompt (Sec. 3.1's baseline), and its sum in SCORE_FIELD_sum.",
        cli_type=Scorer, cli_default=Scorer.clip, parse=enum_value,
    )  # fmt: skip
    score_field: str = setting(
        None, "Field the score goes to (default clip_score, or lvlm_logp).", show_default=False,
        cli_type=str | None,
    )  # fmt: skip  # None: by --scorer (__post_init__)
    scorer_field: str = setting("scorer", "Field the scorer's name is written to.")
    overwrite: bool = setting(
        False, "Replace an existing score field (otherwise an error).", flags=("--overwrite",)
    )
    categorize: bool = setting(
        False,
        "Also add the image category (as `clipdpo categorize`), same embeddings.",
        flags=("--categorize",),
    )
    prototypes: str | None = setting(None, shared=True)  # with --categorize
    prompt: str = setting(
        "Describe the image.", "--scorer lvlm: the prompt before the text (a record's `prompt` wins)."
    )  # a caption record carries the prompt its caption answered
    device: str = setting("auto", shared=True)
    # the CLIP scorer's precision: the command resolves auto to the concrete one, stored in
    # `{scorer_field}_precision` (None: not stored)
    precision: str | None = setting(None, shared=True, cli_default=Precision.auto, parse=enum_value)
    # --scorer lvlm: the weights' dtype
    dtype: str = setting("auto", shared=True, cli_default=Precision.auto, parse=enum_value)
    chat_template: str | None = setting(None, shared=True)
    max_pixels: int | None = setting(None, shared=True)
    batch_size: int = setting(64, shared=True)
    workers: int = setting(0, shared=True, cli_default=2)  # a Python caller decodes in-process unless it asks
    image_root: str | None = setting(None, shared=True)
    cache_dir: str | None = setting(None, shared=True)
    per_sentence: str | None = setting(
        None, "Score each part of the text (see --parts) alone against the image; the text's score is "
        "their mean or their minimum (CLIP scorer only).",
        cli_type=PerSentence | None, show_default=False, parse=enum_value,
    )  # fmt: skip
    parts: str = setting(
        "sentence",
        "With --per-sentence: the parts, sentences (at . ! ?) or clauses (also at , ; : and 'and').",
        cli_type=Parts, cli_default=Parts.sentence, parse=enum_value,
    )  # fmt: skip
    scorer_name: str | None = None  # the name stored in scorer_field (default: the model's name as loaded)

    def __post_init__(self) -> None:
        if self.score_field is None:
            object.__setattr__(
                self, "score_field", "lvlm_logp" if self.scorer == Scorer.lvlm else "clip_score"
            )
        if self.per_sentence is not None and self.scorer == Scorer.lvlm:
            raise UsageError("--per-sentence needs a CLIP scorer (drop --scorer lvlm)")


PER_SENTENCE = tuple(m.value for m in PerSentence)
PARTS = tuple(m.value for m in Parts)


def text_parts(text: str, parts: str = "sentence") -> list[str]:
    """The parts of a text that `per_sentence` scores one by one (the text itself when it has none)."""
    from clipdpo_cli.io.text import clauses, sentences

    if parts not in PARTS:
        raise UsageError(f"--parts must be one of {', '.join(PARTS)}, got '{parts}'")
    return (sentences if parts == "sentence" else clauses)(text) or [text]


def aggregate(scores: list[float], how: str) -> float:
    """The mean or the minimum of a text's part scores."""
    if how == "mean":
        return sum(scores) / len(scores)
    if how == "min":
        return min(scores)
    raise UsageError(f"--per-sentence must be one of {', '.join(PER_SENTENCE)}, got '{how}'")


def template_fields(template: str) -> list[str]:
    """The record fields a template reads ('{text}' -> ['text'])."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise UsageError(f"--template '{template}': {exc}") from None
    if not names:
        raise UsageError(f"--template '{template}' uses no field: write e.g. 'a photo of {{text}}'")
    if any(not n or not n.isidentifier() for n in names):
        raise UsageError(f"--template '{template}': use plain field names such as {{text}}")
    return names


def text_getter(field: str = "text", template: str | None = None) -> Callable[[dict[str, Any]], str]:
    """A function giving the text to score of a record (BadRecord when a needed field is missing)."""
    if template is None:
        return lambda record: require(record, field)
    names = template_fields(template)

    def fill(record: dict[str, Any]) -> str:
        values = {}
        for name in names:
            value = record.get(name)
            if isinstance(value, (dict, list)) or value is None:
                require(record, name)  # raises BadRecord: missing, or not a string
            values[name] = value
        return template.format(**values)

    return fill


def _check_fields(record: dict[str, Any], options: ScoreSettings, scorer: str) -> None:
    """Refuse to replace another score silently (an explicit --overwrite may)."""
    if options.overwrite:
        return
    if options.score_field in record:
        raise UsageError(
            f"record {record.get('id')} already has '{options.score_field}': pass --score-field NAME to "
            "keep both scores, or --overwrite to replace it"
        )
    previous = record.get(options.scorer_field)
    if previous is not None and previous != scorer:
        raise UsageError(
            f"record {record.get('id')} was scored by '{previous}' ('{options.scorer_field}'); pass "
            "--scorer-field NAME to record this scorer separately, or --overwrite"
        )


def score_records(
    records: Iterable[dict[str, Any]],
    clip: ImageTextScorer,
    options: ScoreSettings | None = None,
    ctx: StageContext | None = None,
    extra: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Records with `score_field` (clip.similarity: 100 x cosine) and `scorer_field` added; fields kept.

    `extra(record, image_embedding)` may add more fields from the same image embedding (score --categorize).
    """
    options = options or ScoreSettings()
    ctx = ctx or StageContext("score")
    get_text = text_getter(options.field, options.template)
    if options.per_sentence is not None:
        aggregate([0.0], options.per_sentence)  # a bad name fails before any record is read
        text_parts("", options.parts)
    scorer = options.scorer_name or clip.name
    precision_field = {f"{options.scorer_field}_precision": options.precision} if options.precision else {}
    chunks = encode_image_chunks(
        records, clip, batch_size=options.batch_size, workers=options.workers,
        image_root=options.image_root, check=get_text,
    )  # fmt: skip
    # Texts go in batches of batch_size too: the batches are length-sorted, and smaller batches pad less
    # (on the benchmark's captions, 64 per batch run 18% fewer positions than 256).
    text_batch = options.batch_size
    for chunk in chunks:
        usable = [e for e in chunk.entries if e.error is None and e.image in chunk.rows]
        texts = [e.checked for e in usable]  # get_text ran as the check when the chunk was planned
        owner = list(range(len(usable)))  # the usable record each text belongs to
        if options.per_sentence is not None:
            split = [text_parts(text, options.parts) for text in texts]
            texts = [part for p in split for part in p]
            owner = [i for i, p in enumerate(split) for _ in p]
        # each (image row, text) pair, scored by the scorer's own rule in one call
        scores: list[float] = []
        if texts:
            text_emb = clip.encode_texts(texts, batch_size=text_batch)
            rows = [chunk.rows[usable[i].image or ""] for i in owner]
            scores = clip.similarity(chunk.embeddings, text_emb)[rows, list(range(len(texts)))].tolist()
        if options.per_sentence is not None:
            by_record: list[list[float]] = [[] for _ in usable]
            for i, value in zip(owner, scores, strict=True):
                by_record[i].append(value)
            scores = [aggregate(values, options.per_sentence) for values in by_record]
        position = {id(e): i for i, e in enumerate(usable)}
        for entry in chunk.entries:
            record = entry.record
            if entry.error is not None or entry.image in chunk.failed:
                ctx.bad(record, entry.error or chunk.failed[entry.image or ""])
                continue
            _check_fields(record, options, scorer)
            row = chunk.rows[entry.image or ""]
            out = {
                **record,
                options.score_field: round(scores[position[id(entry)]], DECIMALS),
                options.scorer_field: scorer,
                **precision_field,
            }
            if extra is not None:
                out.update(extra(record, chunk.embeddings[row]))
            yield out


def lvlm_score_records(
    records: Iterable[dict[str, Any]],
    lvlm: "LikelihoodScorer",
    options: ScoreSettings | None = None,
    ctx: StageContext | None = None,
) -> Iterator[dict[str, Any]]:
    """Each record plus the LVLM's mean (`score_field`) and summed log-likelihood of its text."""
    from clipdpo_cli.io.errors import BadRecord
    from clipdpo_cli.stages.batched import prefetch_images

    options = options or ScoreSettings(scorer=Scorer.lvlm)
    ctx = ctx or StageContext("score")
    get_text = text_getter(options.field, options.template)
    scorer = options.scorer_name or lvlm.name
    pending: list[tuple[dict[str, Any], Any, str, str]] = []

    def flush() -> Iterator[dict[str, Any]]:
        rows = lvlm.text_logprobs([p[1] for p in pending], [p[2] for p in pending], [p[3] for p in pending])
        for (record, _, _, _), (total, count) in zip(pending, rows, strict=True):
            yield {
                **record,
                options.score_field: round(total / count, DECIMALS),
                f"{options.score_field}_sum": round(total, DECIMALS),
                options.scorer_field: scorer,
            }
        pending.clear()

    decoded = prefetch_images(((r, None) for r in records), options.image_root, options.workers)
    for record, _, image in decoded:
        try:
            if isinstance(image, BadRecord):
                raise image
            text = get_text(record).strip()
            if not text:
                raise BadRecord("empty text", reason="empty text")
        except BadRecord as exc:
            ctx.bad(record, exc)
            continue
        _check_fields(record, options, scorer)
        prompt = record.get("prompt") if isinstance(record.get("prompt"), str) else options.prompt
        pending.append((record, image, prompt, text))
        if len(pending) >= options.batch_size:
            yield from flush()
    if pending:
        yield from flush()
