"""Options shared by the model-backed generation commands (caption, ask, eval-amber), declared once."""

from typing import Annotated

import typer

from clipdpo_cli.models.device import HELP, Precision, Use

Dtype = Precision  # the one precision enum (models/device.py); --dtype is its Use.weights

DtypeOpt = Annotated[Dtype, typer.Option(help=HELP[Use.weights])]
BatchSizeOpt = Annotated[int, typer.Option(min=1, help="Rows (prompts) generated together in one batch.")]
TemperatureOpt = Annotated[float, typer.Option(min=0.0, help="Sampling temperature; 0 = greedy.")]
TopPOpt = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling: keep the top tokens of this mass.")
]
MaxNewTokensOpt = Annotated[int, typer.Option(min=1, help="Longest generated text, in tokens.")]
SeedOpt = Annotated[
    int | None,
    typer.Option(help="Each output is sampled from its own stream seeded by this and its id (reproducible)."),
]
ChatTemplateOpt = Annotated[
    str | None,
    typer.Option(
        help="Jinja chat template file for a model that has none (or to replace its own).", show_default=False
    ),
]

MaxPixelsOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Cap on one image's pixels for dynamic-resolution processors (Qwen2-VL max_pixels, SmolVLM "
        "resize edge); fixed-resolution models ignore it.",
        show_default=False,
    ),
]
