"""`clipdpo eval-amber`: the AMBER hallucination benchmark (paper Sec. 6.1, Table 2)."""

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
from clipdpo_cli.commands.respond import YesNo, YesNoOpt
from clipdpo_cli.io.progress import DEFAULT_EVERY
from clipdpo_cli.models.generator import EngineSettings

NAME = "eval-amber"
SUMMARY = "AMBER hallucination benchmark: generate responses and score them as the official scorer."


class Task(str, enum.Enum):
    all = "all"
    generative = "generative"
    discriminative = "discriminative"
    existence = "existence"
    attribute = "attribute"
    relation = "relation"


class Nlp(str, enum.Enum):
    builtin = "builtin"
    official = "official"


@engine_options
def command(
    engine: EngineSettings,
    amber_root: Annotated[
        str,
        typer.Option(help="The AMBER folder: data/annotations.json, relation.json, safe_words.txt, "
                     "query/, and image/AMBER_N.jpg (see docs/amber.md)."),
    ],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="LVLM (Hub id or local directory) that answers the queries."),
    ] = None,
    responses: Annotated[
        str | None,
        typer.Option(help="Score these responses instead: a JSON list of {id, response} (the official "
                     "format) or JSONL."),
    ] = None,
    task: Annotated[Task, typer.Option(help="Which queries to answer and figures to report.")] = Task.all,
    responses_out: ResponsesOutOpt = None,
    resume: ResumeOpt = False,
    shard: AnswerShardOpt = None,
    generate_only: GenerateOnlyOpt = False,
    write_queries: Annotated[
        str | None,
        typer.Option(help="Write the task's queries as JSONL records {id, image, prompt, ...} for "
                     "`clipdpo respond` to this file ('-': stdout), then exit.", show_default=False),
    ] = None,
    yes_no: YesNoOpt = YesNo.prob,
    yes_no_suffix: Annotated[
        str, typer.Option(help="Appended to each yes/no query.")
    ] = "\nAnswer the question using a single word or phrase.",
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Token budget of a description.")] = 512,
    temperature: TemperatureOpt = 0.0,
    top_p: TopPOpt = 1.0,
    seed: Annotated[int, typer.Option(help="Sampling seed (query id is added per row).")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Queries per forward pass.")] = 8,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = Dtype.auto,
    chat_template: ChatTemplateOpt = None,
    max_pixels: MaxPixelsOpt = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Answer only the first N queries of each part (a quick check; the "
                     "figures then cover a subset).", show_default=False),
    ] = None,
    image_dir: Annotated[
        str | None, typer.Option(help="Images folder if not AMBER_ROOT/image.", show_default=False)
    ] = None,
    nlp: Annotated[
        Nlp,
        typer.Option(help="Noun extraction and similarity: builtin (no downloads) or official (NLTK + "
                     "spaCy en_core_web_lg, as the benchmark's scorer)."),
    ] = Nlp.builtin,
    similarity_table: Annotated[
        str | None,
        typer.Option(help="Precomputed word-similarity table (from --build-similarity-table).",
                     show_default=False),
    ] = None,
    similarity_threshold: Annotated[float, typer.Option(help="A word is similar above this.")] = 0.8,
    build_similarity_table: Annotated[
        str | None,
        typer.Option(help="Write the similarity table of the benchmark's vocabulary from spaCy "
                     "en_core_web_lg to this file, then exit.", show_default=False),
    ] = None,
    normalize_answers: Annotated[
        bool,
        typer.Option(help="Map answers such as 'yes.', 'Yes, there is' to Yes/No before scoring (off: "
                     "the official scorer counts only exact 'Yes'/'No')."),
    ] = False,
    output: MetricsOutputOpt = None,
    allow_partial: Annotated[
        bool,
        typer.Option("--allow-partial", help="Score incomplete responses and exit 0 (without it: exit 1, "
                     "after writing the metrics; --limit implies it)."),
    ] = False,
    quiet: QuietOpt = False,
    progress_every: ProgressEveryOpt = DEFAULT_EVERY,
) -> None:
    """clipdpo eval-amber --model out/ --amber-root AMBER/ -r responses.jsonl > amber.json

    Answer AMBER's queries with an LVLM (--model) or read responses made elsewhere (--responses), then
    score them with the official algorithm: CHAIR, Cover, Hal, Cog; Accuracy, Precision, Recall, F1 (per
    type too); AMBER score. The metrics go to stdout as JSON, a table to stderr.
    """
    from clipdpo_cli.stages.respond import RespondSettings

    if build_similarity_table:
        from clipdpo_cli.eval.amber.table import build_similarity_file

        build_similarity_file(amber_root, build_similarity_table, quiet=quiet)
        return
    from clipdpo_cli.eval.amber.run import AmberEvalSettings, run_eval

    if model:
        device = shard_device(device, shard, quiet)

    run_eval(
        AmberEvalSettings(
            amber_root=amber_root, task=task.value, model=model, responses=responses,
            responses_out=responses_out, write_queries=write_queries, resume=resume, shard=shard,
            generate_only=generate_only,
            limit=limit, image_dir=image_dir, device=device, dtype=dtype.value, chat_template=chat_template,
            max_pixels=max_pixels, engine=engine, yes_no_suffix=yes_no_suffix,
            generation=RespondSettings(
                yes_no=yes_no.value, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                seed=seed, batch_size=batch_size,
            ),
            nlp=nlp.value, similarity_table=similarity_table, similarity_threshold=similarity_threshold,
            normalize_answers=normalize_answers, output=output, quiet=quiet, allow_partial=allow_partial,
            progress_every=progress_every,
        )
    )  # fmt: skip
