"""The input options every stage command shares (--input-format and co.; io/sources.py reads them)."""

import enum
from typing import Annotated, Any

import typer

from clipdpo_cli.io.jsonl import DEFAULT_MAX_RECORD
from clipdpo_cli.io.sources import FORMATS, InputSettings

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
          "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}  # fmt: skip


def parse_size(value: str) -> int:
    """'64MiB', '512K', '1000' -> bytes (K, M, G: powers of 1024); typer.BadParameter otherwise."""
    text = value.strip().upper()
    number = text.rstrip("BIKMG ")
    unit = text[len(number) :].strip()
    try:
        size = int(float(number) * _UNITS[unit])
    except (KeyError, ValueError):
        raise typer.BadParameter(f"'{value}' is not a size (e.g. 64MiB, 512K, 100000)") from None
    if size < 1:
        raise typer.BadParameter(f"'{value}': the size must be at least one byte")
    return size


def _check_size(value: str) -> str:
    parse_size(value)
    return value


OLD_IMAGE_DIR, IMAGE_DIR = "--image-dir", "--extract-images-to"  # renamed: --image-dir was also eval-amber's

InputFormat = enum.Enum("InputFormat", {name: name for name in FORMATS}, type=str)  # type: ignore[misc]

INPUT_PARAMS: list[tuple[str, Any, Any]] = [
    (
        "input_format",
        Annotated[
            InputFormat,
            typer.Option(
                help="How to read INPUT: jsonl, json (an array; LLaVA/ShareGPT SFT data: one record per "
                "image), images (a folder), hf (a save_to_disk or load_dataset folder), parquet, arrow, "
                "webdataset (tar shards). auto: from the first bytes and the name.",
            ),
        ],
        "auto",
    ),
    (
        "image_column",
        Annotated[
            str | None,
            typer.Option(
                help="Dataset column (webdataset: extension) holding the image; default: 'image', "
                "the one Image column, or jpg/png/webp.",
                show_default=False,
            ),  # fmt: skip
        ],
        None,
    ),
    (
        "text_column",
        Annotated[
            str | None,
            typer.Option(
                help="Dataset column (webdataset: extension, e.g. txt) read as the record's 'text'.",
                show_default=False,
            ),  # fmt: skip
        ],
        None,
    ),
    (
        "image_dir",
        Annotated[
            str | None,
            typer.Option(
                "--extract-images-to",
                metavar="DIR",
                help="Where images that arrive as bytes (parquet, arrow, HF datasets, webdataset) are "
                "written, once each, by content hash; default: beside -o FILE, as FILE-images/.",
                show_default=False,
            ),
        ],
        None,
    ),
    (  # its old name, kept for a release (hidden; input_options says the new one)
        "image_dir_old",
        Annotated[str | None, typer.Option(OLD_IMAGE_DIR, hidden=True, show_default=False)],
        None,
    ),
    (
        "split",
        Annotated[
            str | None,
            typer.Option(
                help="Split of a Hugging Face dataset with several (default: the only one, or train).",
                show_default=False,
            ),  # fmt: skip
        ],
        None,
    ),
    (
        "max_record_size",
        Annotated[
            str,
            typer.Option(
                metavar="SIZE",
                callback=_check_size,
                help="The longest JSON line or archive (webdataset) member read, e.g. 64MiB, 512K; a longer "
                "one is a bad record (--on-error), read past without being held in memory.",
            ),
        ],
        f"{DEFAULT_MAX_RECORD >> 20}MiB",
    ),
]


def input_options(kwargs: dict[str, Any], ctx: typer.Context) -> InputSettings:
    """Pop the input options out of a command's arguments (`ctx`: its context, for an old flag's note)."""
    fmt = kwargs.pop("input_format")
    image_dir, old = kwargs.pop("image_dir"), kwargs.pop("image_dir_old")
    if old is not None:
        from clipdpo_cli.commands.settings_options import note_renamed
        from clipdpo_cli.io.errors import UsageError

        if image_dir is not None:
            raise UsageError(f"{OLD_IMAGE_DIR} is the old name of {IMAGE_DIR}: give only one of them")
        image_dir = old
        note_renamed(ctx, OLD_IMAGE_DIR, IMAGE_DIR)
    return InputSettings(
        format=getattr(fmt, "value", fmt),
        image_column=kwargs.pop("image_column"),
        text_column=kwargs.pop("text_column"),
        image_dir=image_dir,
        split=kwargs.pop("split"),
        max_record_size=parse_size(kwargs.pop("max_record_size")),
    )
