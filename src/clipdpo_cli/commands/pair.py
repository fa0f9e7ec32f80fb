"""`clipdpo pair`: DPO preference pairs from scored captions and QA records (paper Sec. 4.2)."""

from enum import Enum
from typing import Annotated

import typer

from clipdpo_cli.commands.options import InputOrder, InputOrderOpt, RejectsOpt, stage_command
from clipdpo_cli.io.runner import IOSettings, run_stage
from clipdpo_cli.io.values import optional_float


class PairSource(str, Enum):
    ranked = "ranked"
    injected = "injected"
    noised = "noised"


SourceOpt = Annotated[
    PairSource,
    typer.Option(
        help="Where the rejected answer comes from: ranked (CLIP-ranked captions of an image, the paper's), "
        "injected (`perturb` variants against their trusted original; POVID) or noised (captions of "
        "`caption --image-noise` against the clean image's caption of the same prompt; POVID).",
    ),
]

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
    input_order: InputOrderOpt = InputOrder.grouped,
    rejects: RejectsOpt = None,
    source: SourceOpt = PairSource.ranked,
) -> None:
    """clipdpo filter ... | clipdpo pair > pairs.jsonl

    Per image, the caption pairs with the largest CLIP-score margin (> --min-margin) and similar lengths,
    plus the QA records whose answer passes --min-answer-score, as {image, prompt, chosen, rejected} pairs.
    --source injected / noised pairs POVID's dispreferred answers instead (docs/probe.md).
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
        source=source.value,
    )
    run_stage(NAME, io, lambda records, ctx: pair_records(records, rules, ctx))
