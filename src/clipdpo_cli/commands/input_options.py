"""The input options every stage command shares (--input-format and co.; io/sources.py reads them)."""

import enum
from typing import Annotated, Any

import typer

from clipdpo_cli.io.sources import FORMATS, InputSettings

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
                help="Where images that arrive as bytes (parquet, arrow, HF datasets, webdataset) are "
                "written, once each, by content hash; default: beside -o FILE, as FILE-images/.",
                show_default=False,
            ),
        ],
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
]


def input_options(kwargs: dict[str, Any]) -> InputSettings:
    """Pop the input options out of a command's arguments."""
    fmt = kwargs.pop("input_format")
    return InputSettings(
        format=getattr(fmt, "value", fmt),
        image_column=kwargs.pop("image_column"),
        text_column=kwargs.pop("text_column"),
        image_dir=kwargs.pop("image_dir"),
        split=kwargs.pop("split"),
    )
