"""What an input is: the --input-format names, the settings of every reader, and recognising a format from
a path's first bytes and name (a file whose bytes contradict its name or the option is refused at once)."""

from __future__ import annotations

import gzip
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.io.images import IMAGE_EXTENSIONS
from clipdpo_cli.io.jsonl import DEFAULT_MAX_RECORD, BadLineHandler, LineSource
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.io.streams import is_stream, stream_head

# The names --input-format takes; io/sources/table.py's READERS has a reader for each but "auto".
FORMATS = ("auto", "jsonl", "json", "images", "hf", "parquet", "arrow", "webdataset")

DESCRIBED = {
    "jsonl": "JSON lines",
    "json": "a JSON array",
    "images": "an image folder",
    "hf": "a Hugging Face dataset",
    "parquet": "a parquet file",
    "arrow": "an Arrow file",
    "webdataset": "a tar archive (webdataset)",
    "gzip": "gzip-compressed",
    "image": "an image file",
    "zip": "a zip archive",
}

HF_SAVED_MARKERS = ("state.json", "dataset_info.json", "dataset_dict.json")
HF_DATA_EXTENSIONS = (".parquet", ".arrow")  # a folder of these is a dataset (csv, json: --input-format hf)


@dataclass
class InputSettings:
    """How to read the input: --input-format, --image-column, --text-column, --extract-images-to, --split."""

    format: str = "auto"
    image_column: str | None = None
    text_column: str | None = None
    image_dir: str | None = None
    split: str | None = None
    max_record_size: int = DEFAULT_MAX_RECORD  # the largest JSON line or archive member read (bytes)


def sniff(head: bytes) -> str | None:
    """The format the first bytes of a file show, or None (unknown: the name decides)."""
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head[257:262] == b"ustar":
        return "webdataset"
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG", b"GIF8")) or head[8:12] == b"WEBP":
        return "image"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith((b"ARROW1", b"\xff\xff\xff\xff")):
        return "arrow"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"[") and text[1:].lstrip()[:1] in (b"{", b"]", b""):  # an array of records
        return "json"
    if text.startswith(b"{"):
        return "jsonl"
    return None


def by_name(path: str) -> str | None:
    name = path.lower().removesuffix(".gz")
    for ext, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".parquet", "parquet"), (".arrow", "arrow"),
                     (".tar", "webdataset")):  # fmt: skip
        if name.endswith(ext):
            return fmt
    return None


def head_bytes(path: str, size: int = 512) -> bytes:
    """The first bytes of a file; of its content when it is named .gz and is gzip."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(size)
        if path.endswith(".gz") and head.startswith(b"\x1f\x8b"):
            with gzip.open(path, "rb") as fh:
                head = fh.read(size)
    except (OSError, EOFError):
        return b""
    return head


def wrong_format(path: str, found: str, expected: str) -> InputError:
    """The one-line refusal of a file whose bytes show another format than expected."""
    if found == "gzip":
        return InputError(
            f"{path} is gzip-compressed but not named .gz: name it {os.path.basename(path)}.gz "
            "(read transparently) or pass --input-format jsonl"
        )
    fix = {"image": "pass the folder that holds the images", "zip": "unpack it first"}.get(found)
    fix = fix or f"pass --input-format {found}"
    return InputError(f"{path} is {DESCRIBED[found]}, not {DESCRIBED[expected]}: {fix}")


def is_pattern(path: str) -> bool:
    return "{" in path and ".tar" in path and not os.path.exists(path)


def detect_format(path: str, options: InputSettings, allow_folder: bool = False, peek: bool = True) -> str:
    """The format to read `path` ('-' is stdin) in; InputError when its bytes contradict its name/option.

    `peek`: look at stdin's first bytes (this waits for them: not done before a model loads, so a stage
    in a pipe loads its model while the stage before it starts).
    """
    declared = options.format
    if declared not in FORMATS:
        raise UsageError(f"--input-format must be one of {', '.join(FORMATS)}, got '{declared}'")
    if path == "-":
        return _stdin_format(declared, peek)
    if is_stream(path):
        return _stream_format(path, declared, peek)
    if os.path.isdir(path):
        return _folder_format(path, declared, allow_folder)
    if is_pattern(path):
        if declared not in ("auto", "webdataset"):
            raise InputError(f"{path}: a pattern of tar shards: pass --input-format webdataset")
        return "webdataset"
    found, named = sniff(head_bytes(path)), by_name(path)
    if declared == "auto":
        if named == "jsonl" and found not in (None, "jsonl"):
            raise wrong_format(path, found, "jsonl")
        if found in ("gzip", "image", "zip"):
            raise wrong_format(path, found, "jsonl")
        return found or named or "jsonl"
    if declared == "jsonl" and found == "gzip":
        return "jsonl"
    if found is not None and found != declared and declared not in ("hf", "images"):
        raise wrong_format(path, found, declared)
    return declared


def _stream_format(path: str, declared: str, look: bool) -> str:
    """The format of a path read once (a pipe, a FIFO: io/streams.py), from its kept first bytes (gzip
    looked into) when `look`, else from the option and the name; what needs a file is refused."""
    named = by_name(path)
    needs_file = declared if declared != "auto" else named
    if needs_file in ("hf", "images", "parquet", "arrow"):
        raise InputError(f"{path} is a pipe: {DESCRIBED[needs_file]} is read from a file; save it to one")
    if not look:
        return declared if declared != "auto" else "webdataset" if named == "webdataset" else "jsonl"
    head = stream_head(path)
    found = sniff(head)
    if found == "gzip":  # read transparently (io.jsonl.open_binary; tarfile for a .tar.gz)
        found = sniff(_gunzip_head(head)) or "jsonl"
    if found in ("parquet", "arrow"):
        raise InputError(f"{path} is a pipe: {DESCRIBED[found]} is read from a file; save it to one")
    if declared == "auto":
        if found in ("image", "zip"):
            raise wrong_format(path, found, "jsonl")
        return found or named or "jsonl"
    if found is not None and found != declared:
        raise wrong_format(path, found, declared)
    return declared


def _gunzip_head(head: bytes) -> bytes:
    """What the first bytes of a gzip stream decompress to (as far as they go)."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head)
    except zlib.error:
        return b""


def _stdin_format(declared: str, look: bool) -> str:
    if declared not in ("auto", "jsonl", "json"):
        raise UsageError(f"--input-format {declared} reads a file or folder: pass its path, not stdin")
    peek = getattr(sys.stdin.buffer, "peek", None) if look and sys.stdin is not None else None
    found = None
    if peek is not None:
        try:
            found = sniff(peek(512)[:512])
        except (OSError, ValueError):
            found = None
    if found == "json" and declared == "json":
        return "json"
    if found == "gzip":
        raise InputError("stdin is gzip-compressed: pipe it through `gunzip -c`, or pass the FILE.gz path")
    if found not in (None, "jsonl"):
        hint = "pass --input-format json" if found == "json" else "pass a path instead of stdin"
        raise InputError(f"stdin is {DESCRIBED[found]}, not JSON lines: {hint}")
    return "json" if declared == "json" else "jsonl"


def _folder_format(path: str, declared: str, allow_folder: bool) -> str:
    names = os.listdir(path)
    if declared in ("auto", "hf") and any(m in names for m in HF_SAVED_MARKERS):
        return "hf"
    if declared == "auto":
        lowered = [n.lower() for n in names]
        if os.path.isdir(os.path.join(path, "data")):  # the Hub's layout: data/train-00000-of-00001.parquet
            lowered += [n.lower() for n in os.listdir(os.path.join(path, "data"))]
        if not any(n.endswith(IMAGE_EXTENSIONS) for n in lowered):
            if any(n.endswith(".tar") for n in lowered):
                return "webdataset"
            if any(n.endswith(HF_DATA_EXTENSIONS) for n in lowered):
                return "hf"
        if allow_folder:
            return "images"
        raise InputError(f"{path} is a folder, not a JSONL file (a dataset folder: pass --input-format hf)")
    if declared == "images" and not allow_folder:
        raise UsageError("this command reads records, not an image folder: run caption on the folder first")
    if declared in ("jsonl", "json", "parquet", "arrow"):
        raise InputError(f"{path} is a folder, not {DESCRIBED[declared]}")
    return declared


class Read(NamedTuple):
    """What a reader of io/sources/table.py's READERS gives: the records (counted as read into the counter
    it was given) and, for JSON lines, the file they come from (its size and position for progress)."""

    records: Iterator[dict[str, Any]]
    lines: LineSource | None = None


# A format's reader: (path, settings, context, bad-line handler, counter) -> Read.
ReadFormat = Callable[[str, InputSettings, StageContext, BadLineHandler, list[int]], Read]


def counted(records: Iterator[dict[str, Any]], counter: list[int]) -> Iterator[dict[str, Any]]:
    """The records, `counter[0]` counting them as they are read."""
    for record in records:
        counter[0] += 1
        yield record
