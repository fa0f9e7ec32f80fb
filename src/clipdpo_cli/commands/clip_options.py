"""Options shared by the CLIP-backed commands (score, categorize), declared once."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from clipdpo_cli.models.clip_registry import DEFAULT_MODEL


class Precision(str, enum.Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="CLIP scorer: an alias (see `clipdpo models`), open_clip NAME:TAG, NAME:/path/ckpt, "
        "hf-hub:ORG/REPO or local-dir:/path.",
    ),
]
DEFAULT_CLIP = DEFAULT_MODEL
PrecisionOpt = Annotated[
    Precision, typer.Option(help="fp32, or bf16/fp16 autocast (use bf16 on GPU; weights stay fp32).")
]
BatchSizeOpt = Annotated[
    int, typer.Option(min=1, help="Distinct images per batch; texts go in length-sorted batches this size.")
]
WorkersOpt = Annotated[
    int, typer.Option(min=0, help="DataLoader processes decoding images ahead of the model (0: in-process).")
]
ImageRootOpt = Annotated[
    str | None,
    typer.Option(
        help="Folder that relative `image` paths are relative to; default: $CLIPDPO_IMAGE_ROOT.",
        show_default=False,
    ),
]
CacheDirOpt = Annotated[
    str | None,
    typer.Option(
        help="Where to look for / download weights (default: the Hugging Face cache).", show_default=False
    ),
]


def list_models_and_exit(value: bool) -> None:
    """Eager callback for --list-models: print the registry and stop."""
    if value:
        from clipdpo_cli.commands.models import print_registry

        print_registry(as_json=False)
        raise typer.Exit()


ListModelsOpt = Annotated[
    bool,
    typer.Option(
        "--list-models",
        callback=list_models_and_exit,
        is_eager=True,
        help="Print the CLIP model registry and exit.",
    ),
]
