"""`clipdpo categorize`: image category (text, people, objects, scenes) by CLIP prototypes (Sec. 4.2)."""

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
from clipdpo_cli.commands.options import DeviceOpt, stage_command
from clipdpo_cli.io.runner import IOSettings, run_stage

NAME = "categorize"
SUMMARY = "Add each image's category (text, people, objects, scenes) by CLIP prototypes."


@stage_command(input_help="Input JSONL with an `image` field, '-' for stdin (default), or an image folder.")
def command(
    io: IOSettings,
    model: ModelOpt = DEFAULT_CLIP,
    prototypes: Annotated[
        str | None,
        typer.Option(
            help="JSON {category: [descriptions]} replacing the packaged 10 descriptions per category.",
            show_default=False,
        ),
    ] = None,
    all_sims: Annotated[
        bool, typer.Option("--all-sims", help="Also add `category_sims`: the similarity to every category.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing `category` (otherwise an error).")
    ] = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.fp32,
    batch_size: BatchSizeOpt = 64,
    workers: WorkersOpt = 2,
    image_root: ImageRootOpt = None,
    cache_dir: CacheDirOpt = None,
    list_models: ListModelsOpt = False,
) -> None:
    """clipdpo categorize scored.jsonl | clipdpo filter --text-keep 0.25 > kept.jsonl

    Add `category` (the category prototype most similar to the image) and `category_sim` (that cosine
    similarity). A prototype is the mean normalised text embedding of a category's descriptions. Each
    distinct image is encoded once. (`clipdpo score --categorize` does both on the same embeddings.)
    """
    from clipdpo_cli.models.scorer import load_scorer
    from clipdpo_cli.stages.categorize import (
        CategorizeSettings,
        CategoryPrototypes,
        categorize_records,
        load_descriptions,
    )

    descriptions = load_descriptions(prototypes)  # a bad file fails before the model loads
    options = CategorizeSettings(
        all_field="category_sims" if all_sims else None,
        batch_size=batch_size,
        workers=workers,
        image_root=image_root,
        overwrite=overwrite,
    )
    clip = load_scorer(model, device=device, precision=precision.value, cache_dir=cache_dir)
    protos = CategoryPrototypes(clip, descriptions)
    run_stage(
        NAME,
        io,
        lambda records, ctx: categorize_records(records, clip, protos, options, ctx),
        one_to_one=True,
        allow_folder=True,
    )
