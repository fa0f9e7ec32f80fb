"""`clipdpo filter`: global filtering of scored records (paper Sec. 4.2)."""

from typing import Annotated

import typer

from clipdpo_cli.commands.options import RejectsOpt, stage_command
from clipdpo_cli.io.runner import IOSettings, run_selection
from clipdpo_cli.io.values import optional_float, optional_int

NAME = "filter"
SUMMARY = "Drop low-score, long and text-image records by rule (paper Sec. 4.2)."


@stage_command(lines_only=NAME)
def command(
    io: IOSettings,
    min_caption_score: Annotated[
        str, typer.Option(help="Drop captions scoring below this (paper: 28.0); 'none' turns it off.")
    ] = "28.0",
    min_question_score: Annotated[
        str, typer.Option(help="Drop questions (kind qa) whose question score is below this (paper: 25.0).")
    ] = "25.0",
    max_length: Annotated[
        str, typer.Option(help="Drop captions longer than this many words (CLIP reads 77 tokens, ~60 words).")
    ] = "60",
    text_keep: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Fraction of text-category images kept (fixed by image hash)."),
    ] = 0.25,
    where: Annotated[
        list[str] | None,
        typer.Option(help="Keep only records where 'FIELD OP VALUE' holds (repeatable, all must hold)."),
    ] = None,
    score_field: Annotated[str, typer.Option(help="Field holding the caption score.")] = "clip_score",
    question_score_field: Annotated[
        str, typer.Option(help="Field holding the question score.")
    ] = "question_score",
    rejects: RejectsOpt = None,
) -> None:
    """clipdpo score ... | clipdpo filter --min-caption-score 28 > kept.jsonl

    Drop low-scoring captions and questions, long captions, most text images, and whatever --where
    excludes. Each dropped record is counted by reason in the summary (and written to --rejects).
    """
    from clipdpo_cli.stages.filter import FilterSettings, filter_batch
    from clipdpo_cli.stages.where import Condition

    rules = FilterSettings(
        min_caption_score=optional_float(min_caption_score, "--min-caption-score"),
        min_question_score=optional_float(min_question_score, "--min-question-score"),
        max_length=optional_int(max_length, "--max-length"),
        text_keep=text_keep,
        where=tuple(Condition.parse(w) for w in where or ()),
        score_field=score_field,
        question_score_field=question_score_field,
    )
    run_selection(NAME, io, filter_batch(rules))
