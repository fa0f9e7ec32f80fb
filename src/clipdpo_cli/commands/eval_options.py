"""The options every benchmark command (eval-amber, eval-pope, eval-chair) shares for its `--model` pass
(eval/answer.py ModelPass) and its metrics file: declared once here."""

from typing import Annotated

import typer

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
        help="Answer shard K of N (0-based 'K/N', by image; default from SLURM array variables); only writes "
        "responses.",
        show_default=False,
    ),
]
GenerateOnlyOpt = Annotated[bool, typer.Option(help="Write the responses, do not score them.")]
MetricsOutputOpt = Annotated[
    str | None, typer.Option("--output", "-o", help="Write the metrics JSON here, not stdout.")
]
