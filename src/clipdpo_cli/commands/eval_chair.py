"""`clipdpo eval-chair`: CHAIRs / CHAIRi of descriptions against COCO (Object HalBench's protocol)."""

from typing import Annotated

import typer

from clipdpo_cli.commands.eval_options import (
    AnswerShardOpt,
    GenerateOnlyOpt,
    MetricsOutputOpt,
    ResponsesOutOpt,
    ResumeOpt,
)
from clipdpo_cli.commands.generation import (
    ChatTemplateOpt,
    Dtype,
    DtypeOpt,
    MaxPixelsOpt,
    TemperatureOpt,
    TopPOpt,
    engine_options,
)
from clipdpo_cli.commands.options import DeviceOpt, ProgressEveryOpt, QuietOpt, shard_device
from clipdpo_cli.io.progress import DEFAULT_EVERY
from clipdpo_cli.models.generator import EngineSettings

NAME = "eval-chair"
SUMMARY = "CHAIR (Object HalBench): describe COCO images, count hallucinated objects as the reference code."


@engine_options
def command(
    engine: EngineSettings,
    coco_annotations: Annotated[
        str, typer.Option(help="COCO instance annotations of the images (instances_val2014.json).")
    ],
    coco_captions: Annotated[
        str | None,
        typer.Option(
            help="COCO captions, whose objects count as ground truth too, as in the reference "
            "(default: captions_*.json beside --coco-annotations).",
            show_default=False,
        ),
    ] = None,
    no_captions: Annotated[
        bool, typer.Option("--no-captions", help="Ground truth from the instance annotations only.")
    ] = False,
    image_root: Annotated[
        str | None, typer.Option(help="COCO images folder (val2014).", show_default=False)
    ] = None,
    image_ids: Annotated[
        str | None,
        typer.Option(
            help="The images to describe: one COCO id a line, or JSON lines {image_id, question} "
            "(Object HalBench's 300); default every image of --coco-annotations. Scoring: only these "
            "images count, and each needs a description.",
            show_default=False,
        ),
    ] = None,
    prompts: Annotated[
        str | None,
        typer.Option(
            help="Description prompts, one a line, taken in turn per image (default: 'Please "
            "describe this image in detail.').",
            show_default=False,
        ),
    ] = None,
    synonyms: Annotated[
        str | None,
        typer.Option(help="Another synonym list (default: the reference's, as shipped).", show_default=False),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="LVLM (Hub id or local directory) that describes the images."),
    ] = None,
    responses: Annotated[
        str | None,
        typer.Option(
            help="Score these responses instead (JSONL: response, and image_id or a COCO image "
            "file name in image).",
            show_default=False,
        ),
    ] = None,
    write_queries: Annotated[
        str | None,
        typer.Option(
            help="Write the description queries {id, image, prompt, image_id} for `clipdpo "
            "respond` to this file ('-': stdout), then exit.",
            show_default=False,
        ),
    ] = None,
    responses_out: ResponsesOutOpt = None,
    resume: ResumeOpt = False,
    shard: AnswerShardOpt = None,
    generate_only: GenerateOnlyOpt = False,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Token budget of a description.")] = 512,
    temperature: TemperatureOpt = 0.0,
    top_p: TopPOpt = 1.0,
    seed: Annotated[int, typer.Option(help="Sampling seed (derived per query id).")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 8,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = Dtype.auto,
    chat_template: ChatTemplateOpt = None,
    max_pixels: MaxPixelsOpt = None,
    details: Annotated[
        str | None,
        typer.Option(
            help="Write each response's mentioned, hallucinated and ground-truth objects here (JSONL).",
            show_default=False,
        ),
    ] = None,
    output: MetricsOutputOpt = None,
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial",
            help="With --image-ids: score when some images have no description and "
            "exit 0 (without it: exit 1, after writing the metrics).",
        ),
    ] = False,
    quiet: QuietOpt = False,
    progress_every: ProgressEveryOpt = DEFAULT_EVERY,
) -> None:
    """clipdpo eval-chair --coco-annotations instances_val2014.json --image-ids ids.txt -m out/ > chair.json

    Describe COCO images with an LVLM (--model) or read descriptions made elsewhere (--responses), then count
    their COCO objects as CHAIR's reference code does (synonyms, plural forms, two-word objects): CHAIRs
    (descriptions with a hallucinated object), CHAIRi (hallucinated object mentions), recall of the
    ground-truth objects and length. The metrics go to stdout as JSON, a table to stderr.
    """
    from clipdpo_cli.eval.answer import ModelPass
    from clipdpo_cli.eval.chair.run import ChairEvalSettings, run_eval
    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.stages.respond import RespondSettings

    model_pass = None
    if model is not None:
        model_pass = ModelPass(
            model=model,
            device=shard_device(device, shard, quiet),
            engine=engine,
            dtype=dtype.value,
            chat_template=chat_template,
            max_pixels=max_pixels,
            generation=RespondSettings(
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
                batch_size=batch_size,
            ),
            responses_out=responses_out,
            resume=resume,
            shard=shard,
            quiet=quiet,
            progress_every=progress_every,
        )
    elif responses_out or resume or shard or generate_only:
        raise UsageError("--responses-out, --resume, --shard and --generate-only go with --model")
    if coco_captions and no_captions:
        raise UsageError("--coco-captions and --no-captions exclude each other")
    run_eval(
        ChairEvalSettings(
            coco_annotations=coco_annotations,
            coco_captions=coco_captions,
            no_captions=no_captions,
            image_root=image_root,
            image_ids=image_ids,
            prompts=prompts,
            synonyms=synonyms,
            responses=responses,
            write_queries=write_queries,
            model_pass=model_pass,
            generate_only=generate_only,
            details=details,
            output=output,
            allow_partial=allow_partial,
            quiet=quiet,
        )
    )
