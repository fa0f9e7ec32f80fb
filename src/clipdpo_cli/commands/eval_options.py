"""The options the benchmark commands (eval-amber, eval-pope, eval-chair, eval-zeroshot) share, declared once
here: their settings dataclasses mark these fields `shared` (io.setting) and `benchmark_command` takes the
annotations from `SHARED`. The generation options (-m, --max-new-tokens, --dtype, the engine's...) are the
one group of models/generation_settings.py. The --model pass itself is eval/answer.py's."""

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from clipdpo_cli.commands.clip_options import ImageRootOpt, PrecisionOpt
from clipdpo_cli.commands.generation import generation_command
from clipdpo_cli.commands.options import OnErrorOpt, ProgressEveryOpt, QuietOpt, shard_device
from clipdpo_cli.commands.respond import YesNoOpt

T = TypeVar("T")

ResponsesOpt = Annotated[
    str | None,
    typer.Option(
        help="Score these responses instead of answering: the JSONL `clipdpo respond` writes (eval-amber "
        "also reads the official JSON list of {id, response}; the fields each benchmark reads: "
        "docs/evaluation.md).",
        show_default=False,
    ),
]
WriteQueriesOpt = Annotated[
    str | None,
    typer.Option(
        help="Write the benchmark's queries as JSONL records {id, image, prompt, ...} for `clipdpo respond` "
        "to this file ('-': stdout), then exit.",
        show_default=False,
    ),
]
ResponsesOutOpt = Annotated[
    str | None,
    typer.Option(
        "--responses-out", "-r", help="With --model: write the responses here (JSONL).", show_default=False
    ),
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="With --responses-out: skip the ids already in that file.")
]
AnswerShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="Answer only shard K of N (0-based 'K/N', by image; default from SLURM array variables) and "
        "write its responses (eval-zeroshot: its captions); the shards' files are scored together "
        "afterwards.",
        show_default=False,
    ),
]
GenerateOnlyOpt = Annotated[bool, typer.Option(help="Write the responses, do not score them.")]
LimitOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="A quick check: only N queries of each part or set (eval-zeroshot: N images per dataset, a "
        "stable pick); the figures then cover that subset.",
        show_default=False,
    ),
]
AllowPartialOpt = Annotated[
    bool,
    typer.Option(
        "--allow-partial",
        help="Score when some expected responses are missing and exit 0 (without it: exit 1, after writing "
        "the metrics); eval-amber's and eval-pope's --limit imply it.",
    ),
]
MetricsOutputOpt = Annotated[
    str | None, typer.Option("--output", "-o", help="Write the metrics JSON here, not stdout.")
]

SHARED = {
    "responses": ResponsesOpt,
    "write_queries": WriteQueriesOpt,
    "responses_out": ResponsesOutOpt,
    "resume": ResumeOpt,
    "shard": AnswerShardOpt,
    "generate_only": GenerateOnlyOpt,
    "limit": LimitOpt,
    "allow_partial": AllowPartialOpt,
    "output": MetricsOutputOpt,
    "image_root": ImageRootOpt,  # respond's: the queries' images are resolved as its records' are
    "yes_no": YesNoOpt,
    "precision": PrecisionOpt,
    "on_error": OnErrorOpt,
    "quiet": QuietOpt,
    "progress_every": ProgressEveryOpt,
}


def benchmark_command(settings: type, without: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Any]:
    """A benchmark command's options: its settings' own, the generation group's (`without` those it does not
    take; defaults from its settings' fields of those names), and --config FILE."""
    return generation_command(settings, SHARED, model=None, without=without)


def benchmark_settings(cls: type[T], values: dict[str, Any]) -> T:
    """A benchmark's settings from its parsed options; with --model, --device auto under a shard is the
    shard's GPU (commands/options.py shard_device)."""
    from clipdpo_cli.models.generation_settings import GenerationSettings, pick

    engine = GenerationSettings.of(values).engine_settings  # the group checks the sampling options too
    opts: Any = cls(**{**pick(cls, values), "engine": engine})
    if opts.model:
        opts.device = shard_device(opts.device, opts.shard, opts.quiet)
    return opts
