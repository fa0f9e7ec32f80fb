"""`clipdpo categorize`: image category (text, people, objects, scenes) by CLIP prototypes (Sec. 4.2); its
options are CategorizeSettings' fields."""

from typing import Any

from clipdpo_cli.commands.clip_options import CLIP_SHARED, ListModelsOpt
from clipdpo_cli.commands.options import stage_command
from clipdpo_cli.commands.settings_options import settings_options
from clipdpo_cli.io.runner import IOSettings, run_stage
from clipdpo_cli.io.setting import declared
from clipdpo_cli.stages.categorize import CategorizeSettings

NAME = "categorize"
SUMMARY = "Add each image's category (text, people, objects, scenes) by CLIP prototypes."


@stage_command(input_help="Input JSONL with an `image` field, '-' for stdin (default), or an image folder.")
@settings_options(declared(CategorizeSettings), CLIP_SHARED, config=True)
def command(io: IOSettings, settings: dict[str, Any], list_models: ListModelsOpt = False) -> None:
    """clipdpo categorize scored.jsonl | clipdpo filter --text-keep 0.25 > kept.jsonl

    Add `category` (the category prototype most similar to the image) and `category_sim` (that cosine
    similarity). A prototype is the mean normalised text embedding of a category's descriptions. Each
    distinct image is encoded once. (`clipdpo score --categorize` does both on the same embeddings.)
    """
    from clipdpo_cli.models.scorer import load_scorer
    from clipdpo_cli.stages.categorize import CategoryPrototypes, categorize_records, load_descriptions

    options = CategorizeSettings(**settings)
    descriptions = load_descriptions(options.prototypes)  # a bad file fails before the model loads
    clip = load_scorer(
        options.model, device=options.device, precision=options.precision, cache_dir=options.cache_dir
    )
    protos = CategoryPrototypes(clip, descriptions)
    run_stage(
        NAME,
        io,
        lambda records, ctx: categorize_records(records, clip, protos, options, ctx),
        one_to_one=True,
        allow_folder=True,
    )
