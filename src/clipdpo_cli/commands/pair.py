"""`clipdpo pair`: DPO preference pairs from scored captions and QA records (paper Sec. 4.2)."""

from typing import Annotated

import typer

from clipdpo_cli.commands.options import InputOrder, InputOrderOpt, RejectsOpt, stage_command
from clipdpo_cli.io.runner import IOSettings, run_stage
from clipdpo_cli.io.values import optional_float

NAME = "pair"
SUMMARY = "Turn scored captions and QA records into DPO preference pairs."


@stage_command()
def command(
    io: IOSettings,
    min_margin: Annotated[
        float,
        typer.Option(help="Keep caption pairs whose score difference is greater than this (paper: 2.0)."),
    ] = 2.0,
    max_length_diff: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Max word-count difference, as a fraction of the longer caption."
        ),
    ] = 0.25,
    per_image: Annotated[
        int, typer.Option(min=1, help="Caption pairs emitted per image (best margins).")
    ] = 1,
    min_answer_score: Annotated[
        str, typer.Option(help="Keep QA pairs whose answer (synthetic caption) score is at least this.")
    ] = "28.0",
    score_field: Annotated[str, typer.Option(help="Field holding the CLIP score.")] = "clip_score",
    prompt: Annotated[
        str | None, typer.Option(help="Give every caption pair this prompt (default: the chosen's prompt).")
    ] = None,
    fuse_field: Annotated[
        str | None,
        typer.Option(
            help="Rank-fuse the score with this field among each image's captions (CSR): alpha x rank(score) "
            "+ (1 - alpha) x rank(FIELD), ranks (n - i)/n best first; e.g. lvlm_logp from score --scorer "
            "lvlm. Margins are then in rank units (use e.g. --min-margin 0).",
            show_default=False,
        ),
    ] = None,
    fuse_alpha: Annotated[
        float, typer.Option(help="With --fuse-field: the weight of the score's rank (CSR's clip_alpha).")
    ] = 0.9,
    input_order: InputOrderOpt = InputOrder.grouped,
    rejects: RejectsOpt = None,
) -> None:
    """clipdpo filter ... | clipdpo pair > pairs.jsonl

    Per image, the caption pairs with the largest CLIP-score margin (> --min-margin) and similar lengths,
    plus the QA records whose answer passes --min-answer-score, as {image, prompt, chosen, rejected} pairs.
    """
    from clipdpo_cli.stages.pair import PairSettings, pair_records

    rules = PairSettings(
        min_margin=min_margin,
        max_length_diff=max_length_diff,
        per_image=per_image,
        min_answer_score=optional_float(min_answer_score, "--min-answer-score"),
        score_field=score_field,
        prompt=prompt,
        input_order=input_order.value,
        fuse_field=fuse_field,
        fuse_alpha=fuse_alpha,
    )
    run_stage(NAME, io, lambda records, ctx: pair_records(records, rules, ctx))
