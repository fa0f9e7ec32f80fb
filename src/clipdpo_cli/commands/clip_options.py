"""Options shared by the CLIP-backed commands (score, categorize), declared once, and the image-reading
options (--workers, --image-root) of every command that decodes images."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from clipdpo_cli.commands.options import DeviceOpt
from clipdpo_cli.models.clip_registry import DEFAULT_MODEL
from clipdpo_cli.models.device import CHOICES, HELP, Precision, Use


def _autocast_choice(value: Precision) -> Precision:
    """--precision of a CLIP scorer: the one enum, the choices of `Use.autocast`."""
    if value.value not in CHOICES[Use.autocast]:
        raise typer.BadParameter(f"'{value.value}' is not one of {', '.join(CHOICES[Use.autocast])}")
    return value


ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="CLIP scorer: an alias (see `clipdpo models`), open_clip NAME:TAG, NAME:/path/ckpt, "
        "hf-hub:ORG/REPO, local-dir:/path, or transformers:ID_OR_DIR (a transformers CLIP / SigLIP / "
        "SigLIP-2).",
    ),
]
DEFAULT_CLIP = DEFAULT_MODEL
PrecisionOpt = Annotated[
    Precision,
    typer.Option(
        metavar="<" + "|".join(CHOICES[Use.autocast]) + ">",
        callback=_autocast_choice,
        help=HELP[Use.autocast],
    ),
]
BatchSizeOpt = Annotated[
    int, typer.Option(min=1, help="Distinct images per batch; texts go in length-sorted batches this size.")
]
WorkersOpt = Annotated[
    int,
    typer.Option(min=0, help="Workers decoding images ahead of the model (0: in-process, one at a time)."),
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
        help="The weights cache folder (default: the Hugging Face cache).",
        show_default=False,
    ),
]


PrototypesOpt = Annotated[
    str | None,
    typer.Option(
        help="JSON {category: [descriptions]} replacing the packaged 10 descriptions per category.",
        show_default=False,
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


# the shared annotations of a CLIP-backed command's settings fields (score, categorize), by field name
CLIP_SHARED: dict[str, Any] = {
    "model": ModelOpt, "prototypes": PrototypesOpt, "device": DeviceOpt, "precision": PrecisionOpt,
    "batch_size": BatchSizeOpt, "workers": WorkersOpt, "image_root": ImageRootOpt, "cache_dir": CacheDirOpt,
}  # fmt: skip
