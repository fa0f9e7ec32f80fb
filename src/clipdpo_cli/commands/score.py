"""`clipdpo score`: CLIP image-text scores, 100 x cosine (paper Sec. 4.2)."""

from typing import Annotated

import typer

from clipdpo_cli.commands.clip_options import (
    DEFAULT_CLIP,
    BatchSizeOpt,
    CacheDirOpt,
    DeviceOpt,
    ImageRootOpt,
    ListModelsOpt,
    ModelOpt,
    Precision,
    PrecisionOpt,
    WorkersOpt,
)
from clipdpo_cli.commands.options import stage_command
from clipdpo_cli.io.runner import IOOptions, run_stage

NAME = "score"
SUMMARY = "Add CLIP image-text scores (100 x cosine) to caption and QA records."


@stage_command()
def command(
    io: IOOptions,
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
    score_field: Annotated[str, typer.Option(help="Field the score is written to.")] = "clip_score",
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
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.fp32,
    batch_size: BatchSizeOpt = 64,
    workers: WorkersOpt = 2,
    image_root: ImageRootOpt = None,
    cache_dir: CacheDirOpt = None,
    list_models: ListModelsOpt = False,
) -> None:
    """clipdpo caption imgs/ | clipdpo score --model dfn-h14 > scored.jsonl

    Add `clip_score` = 100 x cosine(CLIP image embedding, text embedding) and `scorer` to each record
    (paper thresholds: captions 28, questions 25, pair margin 2.0). Each distinct image is decoded and
    encoded once; records of one image should be adjacent (as caption emits them). For `ask` records,
    the default `text` is the question turned into a description plus the positive answer; use
    `--field question --score-field question_score` for the question score.
    """
    from clipdpo_cli.models.clip import load_clip
    from clipdpo_cli.stages.score import ScoreOptions, score_records, template_fields

    if template is not None:
        template_fields(template)  # a bad template is a usage error before the model loads
    options = ScoreOptions(
        field=field,
        template=template,
        score_field=score_field,
        scorer_field=scorer_field,
        overwrite=overwrite,
        batch_size=batch_size,
        workers=workers,
        image_root=image_root,
    )
    if categorize:
        from clipdpo_cli.stages.categorize import CategorizeOptions, CategoryPrototypes, load_descriptions

        descriptions = load_descriptions(prototypes)  # a bad file fails before the model loads
    clip = load_clip(model, device=device, precision=precision.value, cache_dir=cache_dir)
    extra = None
    if categorize:
        protos, cat_options = CategoryPrototypes(clip, descriptions), CategorizeOptions()

        def extra(record, image_embedding):  # noqa: ANN001, ANN202 - a local callback
            return protos.fields(image_embedding, cat_options)

    run_stage(
        NAME, io, lambda records, ctx: score_records(records, clip, options, ctx, extra), one_to_one=True
    )
