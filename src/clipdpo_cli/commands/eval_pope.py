"""`clipdpo eval-pope`: the POPE object-hallucination benchmark (yes/no questions on COCO val2014)."""

import enum
from typing import Annotated

import typer

from clipdpo_cli.commands.eval_options import (
    AnswerShardOpt,
    GenerateOnlyOpt,
    MetricsOutputOpt,
    ResponsesOutOpt,
    ResumeOpt,
)
from clipdpo_cli.commands.generation import ChatTemplateOpt, Dtype, DtypeOpt, MaxPixelsOpt, engine_options
from clipdpo_cli.commands.options import DeviceOpt, ProgressEveryOpt, QuietOpt, shard_device
from clipdpo_cli.commands.respond import YesNo
from clipdpo_cli.io.progress import DEFAULT_EVERY
from clipdpo_cli.models.generator import EngineSettings

NAME = "eval-pope"
SUMMARY = "POPE benchmark: answer its yes/no questions and score them as its official evaluate.py."


class Split(str, enum.Enum):
    all = "all"
    random = "random"
    popular = "popular"
    adversarial = "adversarial"


@engine_options
def command(
    engine: EngineSettings,
    pope_root: Annotated[
        str,
        typer.Option(
            help="Folder of the official question files coco_pope_random.json, coco_pope_popular.json "
            "and coco_pope_adversarial.json (AoiDragon/POPE output/coco/)."
        ),
    ],
    image_root: Annotated[
        str | None,
        typer.Option(
            help="COCO val2014 images folder (the files' 'image' names are joined to it).", show_default=False
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="LVLM (Hub id or local directory) that answers the questions."),
    ] = None,
    responses: Annotated[
        str | None,
        typer.Option(
            help="Score these responses instead (JSONL of the respond stage: id, response; p_yes, "
            "p_no under --yes-no prob).",
            show_default=False,
        ),
    ] = None,
    split: Annotated[Split, typer.Option(help="Which question set(s) to answer and score.")] = Split.all,
    write_queries: Annotated[
        str | None,
        typer.Option(
            help="Write the questions as JSONL records {id, image, prompt, yes_no, question_id, "
            "label, split, ...} for `clipdpo respond` to this file ('-': stdout), then exit.",
            show_default=False,
        ),
    ] = None,
    post_prompt: Annotated[
        str, typer.Option(help="Appended to each question (default: lmms-eval's POPE post-prompt).")
    ] = "\nAnswer the question using a single word or phrase.",
    yes_no: Annotated[
        YesNo,
        typer.Option(
            help="prob: answer and score by the next-token probabilities of Yes/No (p_yes > p_no); "
            "generate: a short free answer, read as POPE's evaluate.py reads text."
        ),
    ] = YesNo.prob,
    responses_out: ResponsesOutOpt = None,
    resume: ResumeOpt = False,
    shard: AnswerShardOpt = None,
    generate_only: GenerateOnlyOpt = False,
    max_new_tokens: Annotated[
        int, typer.Option(min=1, help="Token budget of a free answer (--yes-no generate).")
    ] = 16,
    batch_size: Annotated[int, typer.Option(min=1, help="Questions per forward pass.")] = 8,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = Dtype.auto,
    chat_template: ChatTemplateOpt = None,
    max_pixels: MaxPixelsOpt = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Only the first N questions of each set (a quick check; the figures then cover a subset).",
            show_default=False,
        ),
    ] = None,
    output: MetricsOutputOpt = None,
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial",
            help="Score incomplete responses and exit 0 (without it: exit 1, "
            "after writing the metrics; --limit implies it).",
        ),
    ] = False,
    quiet: QuietOpt = False,
    progress_every: ProgressEveryOpt = DEFAULT_EVERY,
) -> None:
    """clipdpo eval-pope --pope-root pope/ --image-root val2014/ --model out/ -r pope.jsonl > pope.json

    Answer POPE's yes/no questions (random, popular, adversarial) with an LVLM (--model) or read responses
    made elsewhere (--responses); per set: accuracy, precision, recall, F1 and yes-ratio, answers read as the
    benchmark's evaluate.py reads them (or from p_yes/p_no under --yes-no prob). The metrics go to stdout as
    JSON, a table to stderr.
    """
    from clipdpo_cli.eval.answer import ModelPass
    from clipdpo_cli.eval.pope.data import SPLITS
    from clipdpo_cli.eval.pope.run import PopeEvalSettings, run_eval
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
                yes_no=yes_no.value,
                yes_no_max_new_tokens=max_new_tokens,
                temperature=0.0,
                batch_size=batch_size,
                seed=0,
            ),
            responses_out=responses_out,
            resume=resume,
            shard=shard,
            quiet=quiet,
            progress_every=progress_every,
        )
    elif responses_out or resume or shard or generate_only:
        from clipdpo_cli.io.errors import UsageError

        raise UsageError("--responses-out, --resume, --shard and --generate-only go with --model")
    run_eval(
        PopeEvalSettings(
            pope_root=pope_root,
            image_root=image_root,
            splits=SPLITS if split is Split.all else (split.value,),
            responses=responses,
            write_queries=write_queries,
            model_pass=model_pass,
            post_prompt=post_prompt,
            yes_no=yes_no.value,
            limit=limit,
            generate_only=generate_only,
            output=output,
            allow_partial=allow_partial,
            quiet=quiet,
        )
    )
