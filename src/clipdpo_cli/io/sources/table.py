"""The one table of input formats: each --input-format name and its reader (one module per format), and
the openers every stage goes through (check_input before a model loads, open_input, line_source)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.jsonl import BadLineHandler, LineSource
from clipdpo_cli.io.sources.byte_images import default_image_dir, make_folder, written_images
from clipdpo_cli.io.sources.folder import read_image_folder
from clipdpo_cli.io.sources.formats import DESCRIBED, InputSettings, ReadFormat, detect_format, is_pattern
from clipdpo_cli.io.sources.hf import dataset_reader
from clipdpo_cli.io.sources.json_array import read_json_array
from clipdpo_cli.io.sources.lines import lines_of, read_lines
from clipdpo_cli.io.sources.webdataset import read_webdataset
from clipdpo_cli.io.stage import StageContext


@dataclass(frozen=True)
class Reader:
    """A format's reader; `image_bytes`: its images may come as bytes (written by InputSource.prepare, under
    --extract-images-to or beside -o)."""

    read: ReadFormat
    image_bytes: bool = False


# Every format --input-format names but "auto" (formats.FORMATS, in the same order).
READERS: dict[str, Reader] = {
    "jsonl": Reader(read_lines),
    "json": Reader(read_json_array),
    "images": Reader(read_image_folder),
    "hf": Reader(dataset_reader("hf"), image_bytes=True),
    "parquet": Reader(dataset_reader("parquet"), image_bytes=True),
    "arrow": Reader(dataset_reader("arrow"), image_bytes=True),
    "webdataset": Reader(read_webdataset, image_bytes=True),
}


def check_input(
    path: str,
    options: InputSettings,
    allow_folder: bool = False,
    output: str | None = None,
    lines_only: str | None = None,
) -> str:
    """The input's format, checked before any model loads: it exists, its bytes match (see the module),
    it is JSON lines where the stage reads only those (`lines_only`: its name), and webdataset images (always
    bytes) have a folder to go to."""
    if path != "-" and not os.path.exists(path) and not is_pattern(path):
        raise InputError(f"input file not found: {path}")
    fmt = detect_format(path, options, allow_folder, peek=False)
    if lines_only and fmt != "jsonl":
        raise _not_lines(path, fmt, lines_only)
    if fmt == "webdataset" and not (options.image_dir or default_image_dir(output)):
        make_folder(None)
    return fmt


class InputSource:
    """An opened input: its records (ids given), size and position for progress, and `prepare`, which
    the runner applies after sharding and resume (it writes the images that came as bytes)."""

    def __init__(self, records: Iterator[dict[str, Any]], lines: LineSource | None = None) -> None:
        self.records = records
        self.lines = lines
        self.total_bytes = lines.total_bytes if lines is not None else None
        self.image_dir: str | None = None  # where images that came as bytes are written
        self.has_bytes = False

    @property
    def bytes_read(self) -> int:
        return self.lines.bytes_read if self.lines is not None else 0

    def close(self) -> None:
        if self.lines is not None:
            self.lines.close()

    def prepare(self, records: Iterator[dict[str, Any]], ctx: StageContext) -> Iterator[dict[str, Any]]:
        """The records with every image that came as bytes checked and written (a bad one is ctx.bad)."""
        if not self.has_bytes:
            return records
        return written_images(records, self.image_dir, ctx)


def open_input(
    path: str,
    options: InputSettings,
    ctx: StageContext,
    on_bad_line: BadLineHandler,
    counter: list[int],
    allow_folder: bool = False,
    output: str | None = None,
) -> InputSource:
    """The input's records as an InputSource, read by its format's reader; `counter[0]` counts the records
    read."""
    fmt = detect_format(path, options, allow_folder)
    reader = READERS[fmt]
    records, lines = reader.read(path, options, ctx, on_bad_line, counter)
    source = InputSource(records, lines)
    if reader.image_bytes:
        source.image_dir = options.image_dir or default_image_dir(output)
        source.has_bytes = True
    return source


def line_source(path: str, options: InputSettings, stage: str) -> LineSource:
    """The JSON lines of a stage that reads only them (filter: it writes back the very lines it read)."""
    fmt = detect_format(path, options)
    if fmt != "jsonl":
        raise _not_lines(path, fmt, stage)
    return lines_of(path)


def _not_lines(path: str, fmt: str, stage: str) -> InputError:
    """The refusal of another format by a stage that reads only JSON lines (filter)."""
    name = "stdin" if path == "-" else path
    return InputError(
        f"{stage} reads JSON lines; {name} is {DESCRIBED[fmt]}: turn it into records first "
        "(caption, score and the other stages read it directly)"
    )
