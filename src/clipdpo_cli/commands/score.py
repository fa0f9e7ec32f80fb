"""`clipdpo score`: CLIP image-text scores, 100 x cosine (paper Sec. 4.2), or an LVLM's log-likelihood; its
options are ScoreSettings' fields."""

import dataclasses
from typing import Any

from clipdpo_cli.commands.clip_options import CLIP_SHARED, ListModelsOpt
from clipdpo_cli.commands.generation import ChatTemplateOpt, DtypeOpt, MaxPixelsOpt
from clipdpo_cli.commands.options import stage_command
from clipdpo_cli.commands.settings_options import settings_options
from clipdpo_cli.io.runner import IOSettings, run_stage
from clipdpo_cli.io.setting import declared
from clipdpo_cli.stages.score import Scorer, ScoreSettings, template_fields

NAME = "score"
SUMMARY = "Add CLIP image-text scores (100 x cosine) to caption and QA records (or LVLM log-likelihoods)."

SHARED = {**CLIP_SHARED, "dtype": DtypeOpt, "chat_template": ChatTemplateOpt, "max_pixels": MaxPixelsOpt}


@stage_command()
@settings_options(declared(ScoreSettings), SHARED, config=True)
def command(io: IOSettings, settings: dict[str, Any], list_models: ListModelsOpt = False) -> None:
    """clipdpo caption imgs/ | clipdpo score --model dfn-h14 > scored.jsonl

    Add `clip_score` = 100 x cosine(CLIP image embedding, text embedding), `scorer` and `scorer_precision`
    (the --precision it ran in: bf16 on a GPU by default, fp32 on CPU) to each record
    (paper thresholds: captions 28, questions 25, pair margin 2.0). Each distinct image is decoded and
    encoded once; records of one image should be adjacent (as caption emits them). For `ask` records,
    the default `text` is the question turned into a description plus the positive answer; use
    `--field question --score-field question_score` for the question score.
    """
    options = ScoreSettings(**settings)
    if options.template is not None:
        template_fields(options.template)  # a bad template is a usage error before the model loads
    if options.scorer == Scorer.lvlm:
        return score_with_lvlm(io, options)
    return score_with_clip(io, options)


def score_with_clip(io: IOSettings, options: ScoreSettings) -> None:
    """The CLIP scorer (stages.score.score_records); --categorize: the category from the same embeddings."""
    from clipdpo_cli.models.device import Use, resolve_device, resolve_precision
    from clipdpo_cli.models.scorer import load_scorer
    from clipdpo_cli.stages.categorize import (
        CategorizeSettings,
        CategoryPrototypes,
        check_category,
        load_descriptions,
    )
    from clipdpo_cli.stages.score import score_records

    descriptions = (
        load_descriptions(options.prototypes) if options.categorize else None
    )  # fails before loading
    concrete = resolve_precision(options.precision, Use.autocast, resolve_device(options.device)).value
    options = dataclasses.replace(options, precision=concrete)
    clip = load_scorer(options.model, device=options.device, precision=concrete, cache_dir=options.cache_dir)
    extra = None
    if descriptions is not None:
        protos, cat_options = (
            CategoryPrototypes(clip, descriptions),
            CategorizeSettings(overwrite=options.overwrite),
        )

        def extra(record, image_embedding):  # noqa: ANN001, ANN202 - a local callback
            check_category(record, cat_options)
            return protos.fields(image_embedding, cat_options)

    run_stage(
        NAME, io, lambda records, ctx: score_records(records, clip, options, ctx, extra), one_to_one=True
    )


def score_with_lvlm(io: IOSettings, options: ScoreSettings) -> None:
    """--scorer lvlm: the LVLM's log-likelihood of each text (stages.score.lvlm_score_records)."""
    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.models.clip_registry import DEFAULT_MODEL
    from clipdpo_cli.models.lvlm import load_lvlm
    from clipdpo_cli.stages.score import lvlm_score_records

    if options.categorize:
        raise UsageError("--categorize needs a CLIP scorer (drop --scorer lvlm, or run categorize apart)")
    if options.model == DEFAULT_MODEL:
        raise UsageError("--scorer lvlm needs the LVLM: -m MODEL (a Hub id or local directory)")
    lvlm = load_lvlm(
        options.model, device=options.device, dtype=options.dtype, chat_template=options.chat_template,
        max_pixels=options.max_pixels,
    )  # fmt: skip
    run_stage(NAME, io, lambda records, ctx: lvlm_score_records(records, lvlm, options, ctx), one_to_one=True)
