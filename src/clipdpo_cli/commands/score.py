"""`clipdpo score`: CLIP image-text scores, 100 x cosine (paper Sec. 4.2), or an LVLM's log-likelihood."""

import enum
from typing import Annotated

import typer

from clipdpo_cli.commands.clip_options import (
    DEFAULT_CLIP,
    BatchSizeOpt,
    CacheDirOpt,
    ImageRootOpt,
    ListModelsOpt,
    ModelOpt,
    Precision,
    PrecisionOpt,
    WorkersOpt,
)
from clipdpo_cli.commands.generation import ChatTemplateOpt, Dtype, DtypeOpt, MaxPixelsOpt
from clipdpo_cli.commands.options import DeviceOpt, stage_command
from clipdpo_cli.io.runner import IOSettings, run_stage

NAME = "score"
SUMMARY = "Add CLIP image-text scores (100 x cosine) to caption and QA records (or LVLM log-likelihoods)."


class Scorer(str, enum.Enum):
    clip = "clip"
    lvlm = "lvlm"


class PerSentence(str, enum.Enum):
    mean = "mean"
    min = "min"


class Parts(str, enum.Enum):
    sentence = "sentence"
    clause = "clause"


@stage_command()
def command(
    io: IOSettings,
    model: ModelOpt = DEFAULT_CLIP,
    field: Annotated[
        str,
        typer.Option(
            help="Record field holding the text to score (a qa record's `text` is its answer check)."
        ),
    ] = "text",
    template: Annotated[
        str | None,
        typer.Option(
            help="Score this text instead, filled from the record: 'a photo of {text}'.", show_default=False
        ),
    ] = None,
    scorer: Annotated[
        Scorer,
        typer.Option(
            help="clip: 100 x cosine of a CLIP model; lvlm: the LVLM's (-m) mean log-likelihood of the text "
            "given the image and --prompt (Sec. 3.1's baseline), and its sum in SCORE_FIELD_sum."
        ),
    ] = Scorer.clip,
    score_field: Annotated[
        str | None,
        typer.Option(help="Field the score goes to (default clip_score, or lvlm_logp).", show_default=False),
    ] = None,
    scorer_field: Annotated[str, typer.Option(help="Field the scorer's name is written to.")] = "scorer",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing score field (otherwise an error).")
    ] = False,
    categorize: Annotated[
        bool,
        typer.Option(
            "--categorize", help="Also add the image category (as `clipdpo categorize`), same embeddings."
        ),
    ] = False,
    prototypes: Annotated[
        str | None, typer.Option(help="With --categorize: category descriptions JSON.", show_default=False)
    ] = None,
    prompt: Annotated[
        str, typer.Option(help="--scorer lvlm: the prompt before the text (a record's `prompt` wins).")
    ] = "Describe the image.",
    per_sentence: Annotated[
        PerSentence | None,
        typer.Option(
            help="Score each part of the text (see --parts) alone against the image; the text's score is "
            "their mean or their minimum (CLIP scorer only).",
            show_default=False,
        ),
    ] = None,
    parts: Annotated[
        Parts,
        typer.Option(
            help="With --per-sentence: the parts, sentences (at . ! ?) or clauses (also at , ; : and 'and')."
        ),
    ] = Parts.sentence,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.auto,
    dtype: DtypeOpt = Dtype.auto,
    chat_template: ChatTemplateOpt = None,
    max_pixels: MaxPixelsOpt = None,
    batch_size: BatchSizeOpt = 64,
    workers: WorkersOpt = 2,
    image_root: ImageRootOpt = None,
    cache_dir: CacheDirOpt = None,
    list_models: ListModelsOpt = False,
) -> None:
    """clipdpo caption imgs/ | clipdpo score --model dfn-h14 > scored.jsonl

    Add `clip_score` = 100 x cosine(CLIP image embedding, text embedding), `scorer` and `scorer_precision`
    (the --precision it ran in: bf16 on a GPU by default, fp32 on CPU) to each record
    (paper thresholds: captions 28, questions 25, pair margin 2.0). Each distinct image is decoded and
    encoded once; records of one image should be adjacent (as caption emits them). For `ask` records,
    the default `text` is the question turned into a description plus the positive answer; use
    `--field question --score-field question_score` for the question score.
    """
    from clipdpo_cli.models.scorer import load_scorer
    from clipdpo_cli.stages.score import ScoreSettings, score_records, template_fields

    if template is not None:
        template_fields(template)  # a bad template is a usage error before the model loads
    options = ScoreSettings(
        field=field,
        template=template,
        score_field=score_field or ("lvlm_logp" if scorer == Scorer.lvlm else "clip_score"),
        scorer_field=scorer_field,
        overwrite=overwrite,
        batch_size=batch_size,
        workers=workers,
        image_root=image_root,
        prompt=prompt,
        per_sentence=per_sentence.value if per_sentence is not None else None,
        parts=parts.value,
    )
    if scorer == Scorer.lvlm:
        if per_sentence is not None:
            from clipdpo_cli.io.errors import UsageError

            raise UsageError("--per-sentence needs a CLIP scorer (drop --scorer lvlm)")
        return score_with_lvlm(io, model, options, categorize, device, dtype.value, chat_template, max_pixels)
    if categorize:
        from clipdpo_cli.stages.categorize import CategorizeSettings, CategoryPrototypes, load_descriptions

        descriptions = load_descriptions(prototypes)  # a bad file fails before the model loads
    import dataclasses

    from clipdpo_cli.models.device import Use, resolve_device, resolve_precision

    concrete = resolve_precision(precision, Use.autocast, resolve_device(device)).value
    options = dataclasses.replace(options, precision=concrete)
    clip = load_scorer(model, device=device, precision=concrete, cache_dir=cache_dir)
    extra = None
    if categorize:
        from clipdpo_cli.stages.categorize import check_category

        protos, cat_options = CategoryPrototypes(clip, descriptions), CategorizeSettings(overwrite=overwrite)

        def extra(record, image_embedding):  # noqa: ANN001, ANN202 - a local callback
            check_category(record, cat_options)
            return protos.fields(image_embedding, cat_options)

    run_stage(
        NAME, io, lambda records, ctx: score_records(records, clip, options, ctx, extra), one_to_one=True
    )


def score_with_lvlm(
    io: IOSettings, model: str, options: object, categorize: bool, device: str, dtype: str,
    chat_template: str | None, max_pixels: int | None,
) -> None:  # fmt: skip
    """--scorer lvlm: the LVLM's log-likelihood of each text (stages.score.lvlm_score_records)."""
    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.models.lvlm import load_lvlm
    from clipdpo_cli.stages.score import lvlm_score_records

    if categorize:
        raise UsageError("--categorize needs a CLIP scorer (drop --scorer lvlm, or run categorize apart)")
    if model == DEFAULT_CLIP:
        raise UsageError("--scorer lvlm needs the LVLM: -m MODEL (a Hub id or local directory)")
    lvlm = load_lvlm(model, device=device, dtype=dtype, chat_template=chat_template, max_pixels=max_pixels)
    run_stage(
        NAME, io, lambda records, ctx: lvlm_score_records(records, lvlm, options, ctx), one_to_one=True
    )
