"""Record sources: every input format a stage reads, recognised once, as one iterator of records with ids.

Formats (`--input-format`, or recognised from the first bytes and the name):
  jsonl       JSON lines (.jsonl, .jsonl.gz, stdin): the stages' own format, read by io.jsonl
  json        a JSON array; LLaVA / ShareGPT SFT data (entries with `conversations` or `messages`) gives one
              record per distinct image (text-only entries skipped and counted, the entry ids kept as
              `sft_id` / `sft_ids`, the conversations left out); any other array one record per entry
  images      a folder of image files (the stages that take images: caption, ask)
  hf          a Hugging Face dataset on disk: a `save_to_disk` folder, or a folder `load_dataset` reads
  parquet     a parquet file (the `datasets` library reads it, streaming)
  arrow       an Arrow file (as `datasets` writes them)
  webdataset  tar shards as img2dataset writes them (KEY.jpg + KEY.json / KEY.txt; `{00000..00009}` ranges
              and folders of .tar files too), read by the `webdataset` library

A file whose first bytes show another format than its name (or --input-format) says is refused at once with
one line naming the option that reads it: --on-error skip is for bad records, not for a wrong format.

A path that can be read only once (a pipe such as `<(zcat a.jsonl.gz)`, a FIFO) is recognised from the bytes
io/streams.py keeps and gives back to the reader (gzip in it read transparently); JSON lines, JSON arrays and
webdataset tars come through a pipe, the formats `datasets` reads need a file. --max-record-size bounds a
JSON line (io/jsonl.py) and a tar member (_tar_members): a larger one is read past, a bad record.

Images that arrive as bytes (an Image column, a binary column, a webdataset member) are checked by the one
image decoder (io.images.verify_image_bytes) and written once, named by their content hash, under
--image-dir (default: beside -o), so later stages open them as files. Sharding and resume see the hash
name, so a shard's records do not depend on where its images are written; the written record keeps that hash
as `image_hash`, from which `caption` makes its ids (they do not depend on -o / --image-dir either).

What the user brought is kept under names of its own: a dataset row's or a webdataset sample's own `id` as
`source_id` (as an SFT entry's is `sft_id`); `--text-column` is read as `text`, and `caption`, which writes
its caption to `text`, moves it to `source_text` first.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import os
import sys
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from clipdpo_cli.io.errors import BadRecord, InputError, UsageError
from clipdpo_cli.io.images import IMAGE_EXTENSIONS, list_images, verify_image_bytes
from clipdpo_cli.io.jsonl import (
    DEFAULT_MAX_RECORD,
    GZIP_MAGIC,
    BadLineHandler,
    LineSource,
    gunzipped,
    iter_records,
    open_binary,
    read_batches,
)
from clipdpo_cli.io.records import content_id, make_id
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.io.streams import is_stream, open_stream, stream_head

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

# The private field of a record whose image is still bytes; InputSource.prepare writes it and removes it.
IMAGE_BYTES = "\x00image_bytes"
IMAGE_HASH = "image_hash"  # of an image that came as bytes: its content hash (the written file's name stem)
SOURCE_ID = "source_id"  # a dataset row's / webdataset sample's own `id` (the record's id may be another)

SFT_FIELDS = ("conversations", "messages")  # the dialogue of an SFT entry: not copied into records
WDS_IMAGE_KEYS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")
HF_SAVED_MARKERS = ("state.json", "dataset_info.json", "dataset_dict.json")
HF_DATA_EXTENSIONS = (".parquet", ".arrow")  # a folder of these is a dataset (csv, json: --input-format hf)


@dataclass
class InputSettings:
    """How to read the input: the --input-format, --image-column, --text-column, --image-dir, --split."""

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


def _by_name(path: str) -> str | None:
    name = path.lower().removesuffix(".gz")
    for ext, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".parquet", "parquet"), (".arrow", "arrow"),
                     (".tar", "webdataset")):  # fmt: skip
        if name.endswith(ext):
            return fmt
    return None


def _head(path: str, size: int = 512) -> bytes:
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


def _wrong(path: str, found: str, expected: str) -> InputError:
    """The one-line refusal of a file whose bytes show another format than expected."""
    if found == "gzip":
        return InputError(
            f"{path} is gzip-compressed but not named .gz: name it {os.path.basename(path)}.gz "
            "(read transparently) or pass --input-format jsonl"
        )
    fix = {"image": "pass the folder that holds the images", "zip": "unpack it first"}.get(found)
    fix = fix or f"pass --input-format {found}"
    return InputError(f"{path} is {DESCRIBED[found]}, not {DESCRIBED[expected]}: {fix}")


def _is_pattern(path: str) -> bool:
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
    if _is_pattern(path):
        if declared not in ("auto", "webdataset"):
            raise InputError(f"{path}: a pattern of tar shards: pass --input-format webdataset")
        return "webdataset"
    found, named = sniff(_head(path)), _by_name(path)
    if declared == "auto":
        if named == "jsonl" and found not in (None, "jsonl"):
            raise _wrong(path, found, "jsonl")
        if found in ("gzip", "image", "zip"):
            raise _wrong(path, found, "jsonl")
        return found or named or "jsonl"
    if declared == "jsonl" and found == "gzip":
        return "jsonl"
    if found is not None and found != declared and declared not in ("hf", "images"):
        raise _wrong(path, found, declared)
    return declared


def _stream_format(path: str, declared: str, look: bool) -> str:
    """The format of a path read once (a pipe, a FIFO: io/streams.py), from its kept first bytes (gzip
    looked into) when `look`, else from the option and the name; what needs a file is refused."""
    named = _by_name(path)
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
            raise _wrong(path, found, "jsonl")
        return found or named or "jsonl"
    if found is not None and found != declared:
        raise _wrong(path, found, declared)
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
    if path != "-" and not os.path.exists(path) and not _is_pattern(path):
        raise InputError(f"input file not found: {path}")
    fmt = detect_format(path, options, allow_folder, peek=False)
    if lines_only and fmt != "jsonl":
        raise _not_lines(path, fmt, lines_only)
    if fmt == "webdataset" and not (options.image_dir or default_image_dir(output)):
        _make_folder(None)
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
        return self._written(records, ctx)

    def _written(self, records: Iterator[dict[str, Any]], ctx: StageContext) -> Iterator[dict[str, Any]]:
        folder = None
        for record in records:
            data = record.pop(IMAGE_BYTES, None)
            if data is not None and not (isinstance(data, bytes) and isinstance(record.get("image"), str)):
                ctx.bad(record, BadRecord(f"a field named {IMAGE_BYTES!r}, which clipdpo keeps for image "
                                          "bytes: rename it", "reserved field name"))  # fmt: skip
                continue
            if data is not None:
                if folder is None:
                    folder = _make_folder(self.image_dir)
                name = record["image"]
                try:
                    record["image"] = _write_image(folder, name, data)
                    record[IMAGE_HASH] = os.path.splitext(name)[0]
                except BadRecord as exc:
                    record["image"] = os.path.join(folder, record["image"])
                    ctx.bad(record, exc)
                    continue
            yield record


def _make_folder(folder: str | None) -> str:
    if folder is None:
        raise UsageError(
            "the input holds images as bytes: pass --image-dir DIR (each is written there once, by content "
            "hash, for the later stages) or -o FILE (then FILE's name + '-images/')"
        )
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--image-dir {folder}: cannot create it: {exc.strerror or exc}") from None
    return os.path.abspath(folder)


def _write_image(folder: str, name: str, data: bytes) -> str:
    """Write an image (once: its name is its content hash) after the decoder checked it; its path."""
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        verify_image_bytes(data, path)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def default_image_dir(output: str | None) -> str | None:
    """Beside -o FILE: FILE's name without .jsonl/.gz + '-images'; None for stdout."""
    if not output or output == "-":
        return None
    stem = output
    for suffix in (".gz", ".jsonl", ".json"):
        stem = stem.removesuffix(suffix)
    return stem + "-images"


def open_input(
    path: str,
    options: InputSettings,
    ctx: StageContext,
    on_bad_line: BadLineHandler,
    counter: list[int],
    allow_folder: bool = False,
    output: str | None = None,
) -> InputSource:
    """The input's records as an InputSource; `counter[0]` counts the records read."""
    fmt = detect_format(path, options, allow_folder)
    name = "stdin" if path == "-" else path
    if fmt == "jsonl":
        lines = _GzipLines(path) if _gzip_unnamed(path) else LineSource(path)
        batches = read_batches(lines.open(), max_line=options.max_record_size, on_bad_line=on_bad_line)
        return InputSource(iter_records(batches, on_bad_line, None, counter, name), lines)
    if fmt == "images":
        return InputSource(_counted(list_images(path), counter))
    if fmt == "json":
        return InputSource(_counted(_json_records(path, ctx), counter))
    source = InputSource(iter(()))
    source.image_dir = options.image_dir or default_image_dir(output)
    source.has_bytes = True
    if fmt == "webdataset":
        source.records = _counted(_webdataset_records(path, options, ctx), counter)
    else:
        source.records = _counted(_hf_records(path, fmt, options, ctx), counter)
    return source


def line_source(path: str, options: InputSettings, stage: str) -> LineSource:
    """The JSON lines of a stage that reads only them (filter: it writes back the very lines it read)."""
    fmt = detect_format(path, options)
    if fmt != "jsonl":
        raise _not_lines(path, fmt, stage)
    return _GzipLines(path) if _gzip_unnamed(path) else LineSource(path)


def _not_lines(path: str, fmt: str, stage: str) -> InputError:
    """The refusal of another format by a stage that reads only JSON lines (filter)."""
    name = "stdin" if path == "-" else path
    return InputError(
        f"{stage} reads JSON lines; {name} is {DESCRIBED[fmt]}: turn it into records first "
        "(caption, score and the other stages read it directly)"
    )


def _gzip_unnamed(path: str) -> bool:
    named_plain = path != "-" and not path.endswith(".gz")
    return named_plain and os.path.isfile(path) and sniff(_head(path, 4)) == "gzip"


class _GzipLines(LineSource):
    """A gzip file not named .gz, read as JSON lines because --input-format jsonl said so."""

    def open(self) -> Any:
        self.total_bytes = None
        self._stream = gzip.open(self.path, "rb")
        return self._stream


def _counted(records: Iterator[dict[str, Any]], counter: list[int]) -> Iterator[dict[str, Any]]:
    for record in records:
        counter[0] += 1
        yield record


# --- JSON arrays (LLaVA / ShareGPT) ---------------------------------------------------------------------


def _json_records(path: str, ctx: StageContext) -> Iterator[dict[str, Any]]:
    """A JSON array's records: SFT entries grouped by image (see the module), other arrays entry by entry."""
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open_binary(path) as fh:
                data = fh.read()
        entries = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{name}: not a valid JSON array: {exc}") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{name}: read error: {exc}") from None
    del data
    if not isinstance(entries, list):
        raise InputError(f"{name}: a JSON {type(entries).__name__}, not an array of records")
    if any(isinstance(e, dict) and any(f in e for f in SFT_FIELDS) for e in entries[:1000]):
        yield from _sft_images(entries, name, ctx)
        return
    for n, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            ctx.bad(None, BadRecord(f"not a JSON object (got {type(entry).__name__})", "not a JSON object"),
                    where=f"{name}: entry {n}")  # fmt: skip
            continue
        yield entry if "id" in entry else {"id": content_id(entry), **entry}


def _sft_images(entries: list[Any], name: str, ctx: StageContext) -> Iterator[dict[str, Any]]:
    """Per distinct image one record {id, image, sft_id[, sft_ids], the first entry's other scalars}."""
    by_image: dict[str, dict[str, Any]] = {}
    text_only = repeats = 0
    for n, entry in enumerate(entries, 1):
        entries[n - 1] = None  # its conversations are freed as the array is read
        if not isinstance(entry, dict):
            ctx.bad(None, BadRecord(f"not a JSON object (got {type(entry).__name__})", "not a JSON object"),
                    where=f"{name}: entry {n}")  # fmt: skip
            continue
        image = entry.get("image")
        if image is None or image == []:
            text_only += 1
            continue
        for one in image if isinstance(image, list) else [image]:
            if not isinstance(one, str):
                got = type(one).__name__
                ctx.bad(None, BadRecord(f"field 'image' must be a str, got {got}", "mistyped field 'image'"),
                        where=f"{name}: entry {n}")  # fmt: skip
                continue
            record = by_image.get(one)
            if record is None:
                fields = {k: v for k, v in entry.items() if k not in ("id", "image", *SFT_FIELDS)
                          and isinstance(v, (str, int, float, bool))}  # fmt: skip
                sft_id = entry.get("id")
                by_image[one] = {"id": make_id("image", one), "image": one, "sft_id": sft_id, **fields}
            else:
                record.setdefault("sft_ids", [record["sft_id"]]).append(entry.get("id"))
                repeats += 1
    ctx.stats.notes.append(
        f"{len(entries):,} SFT entries read: {len(by_image):,} distinct images, {text_only:,} text-only "
        f"entries skipped, {repeats:,} entries repeating an image"
    )
    yield from by_image.values()


# --- images that arrive as bytes ------------------------------------------------------------------------

_MAGIC = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG", ".png"), (b"GIF8", ".gif"), (b"BM", ".bmp"),
          (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"))  # fmt: skip


def _image_name(data: bytes, hint: str | None) -> str:
    """A content-hash file name for image bytes, with the extension of `hint` (a path or key) or its magic."""
    ext = os.path.splitext(hint or "")[1].lower()
    if ext not in IMAGE_EXTENSIONS:
        ext = next((e for magic, e in _MAGIC if data.startswith(magic)), "")
        if not ext and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            ext = ".webp"
    return hashlib.blake2b(data, digest_size=16).hexdigest() + (ext or ".img")


_PLAIN = (str, int, float, bool, type(None))


def _json_value(value: Any) -> bool:
    """Whether a column's value can go into a JSON record (binary data, and lists holding it, cannot)."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (bytes, bytearray, memoryview)):
        return False
    try:
        orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return False
    return True


def _with_image(record: dict[str, Any], value: Any) -> dict[str, Any]:
    """Put an image value (a path, bytes, or a datasets Image {bytes, path}) into `record`."""
    data, path = None, None
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, str):
        path = value
    if data:
        record["image"] = _image_name(bytes(data), path)
        record[IMAGE_BYTES] = bytes(data)
    elif path:
        record["image"] = path
    return record


def _identified(record: dict[str, Any]) -> dict[str, Any]:
    """The record with an id: its own, or the hash of its content (the image by its name, not its bytes)."""
    if isinstance(record.get("id"), (str, int)):
        return record
    data = record.pop(IMAGE_BYTES, None)
    record = {"id": content_id(record), **{k: v for k, v in record.items() if k != "id"}}
    if data is not None:
        record[IMAGE_BYTES] = data
    return record


# --- webdataset -----------------------------------------------------------------------------------------


def _webdataset_records(path: str, options: InputSettings, ctx: StageContext) -> Iterator[dict[str, Any]]:
    """One record per sample: the sample's .json fields, `key`, `tar` and the image (see _with_image).

    The members come from _tar_members (each read only up to --max-record-size); webdataset's
    group_by_keys gathers them into samples. A sample with a member over the cap, or whose .json is not
    a usable object, is a bad record.
    """
    from webdataset.shardlists import expand_urls
    from webdataset.tariterators import group_by_keys

    if os.path.isdir(path):
        urls = sorted(os.path.join(path, n) for n in os.listdir(path) if n.lower().endswith(".tar"))
    else:
        urls = expand_urls(path) if _is_pattern(path) else [path]
    try:
        for sample in group_by_keys(_tar_members(urls, options.max_record_size)):
            try:
                yield _webdataset_record(sample, options)
            except BadRecord as exc:
                key, url = sample["__key__"], os.path.basename(str(sample.get("__url__", "")))
                ctx.bad(None, exc, where=f"{url}: sample {key}")
    except (OSError, ValueError, EOFError, tarfile.TarError) as exc:
        raise InputError(f"{path}: cannot read the tar shards: {exc}") from None


def _open_tar(url: str) -> IO[bytes]:
    """A tar shard's bytes, a .tar.gz decompressed by gzip's reader (bounded chunks; tarfile's own
    decompression inflates each 16 KiB it reads at once, up to 16 MiB of zeros)."""
    if is_stream(url):
        stream = open_stream(url)
        return gunzipped(stream) if stream_head(url, 2) == GZIP_MAGIC else stream
    fh = open(url, "rb")
    gz = fh.read(2) == GZIP_MAGIC
    fh.seek(0)
    return gunzipped(fh) if gz else fh


class _TooLarge(int):
    """The size of an archive member that was not read (over --max-record-size)."""


def _tar_members(urls: list[str], cap: int) -> Iterator[dict[str, Any]]:
    """The regular members of each tar (.tar.gz too; a pipe read once) as webdataset's file samples
    {fname, data, __url__}, an empty dict after each shard; a member over `cap` bytes is not read (its
    data is a _TooLarge), so memory never holds more than `cap` bytes of one member."""
    for url in urls:
        with _open_tar(url) as fh, tarfile.open(fileobj=fh, mode="r|*") as tar:
            for info in tar:
                name = info.name
                if not info.isreg() or ("/" not in name and name.startswith("__") and name.endswith("__")):
                    continue
                data: bytes | _TooLarge = _TooLarge(info.size)
                if info.size <= cap:
                    member = tar.extractfile(info)
                    data = member.read(cap + 1) if member is not None else b""
                    if len(data) > cap:
                        data = _TooLarge(len(data))
                yield {"fname": name, "data": data, "__url__": url}
                tar.members = []  # stream mode keeps no index of what was read
        yield {}


def _webdataset_record(sample: dict[str, Any], options: InputSettings) -> dict[str, Any]:
    """A sample as a record; BadRecord for a member over the cap or a .json holding the reserved key."""
    key, url = sample["__key__"], os.path.basename(str(sample.get("__url__", "")))
    for ext, value in sample.items():
        if isinstance(value, _TooLarge):
            raise BadRecord(
                f"member {key}.{ext} is {value:,} bytes, over --max-record-size {options.max_record_size:,}",
                "archive member over --max-record-size",
            )
    record: dict[str, Any] = {"id": make_id("webdataset", url, key)}
    meta = sample.get("json")
    if meta:
        try:
            fields = orjson.loads(meta)
        except orjson.JSONDecodeError:
            fields = {}
        if isinstance(fields, dict):
            if IMAGE_BYTES in fields:
                raise BadRecord(
                    f"{key}.json has a field named {IMAGE_BYTES!r}, which clipdpo keeps for image bytes: "
                    "rename it", "reserved field name"
                )  # fmt: skip
            record.update((k, v) for k, v in fields.items() if k != "id")
            if fields.get("id") is not None:
                record.setdefault(SOURCE_ID, fields["id"])
    record.setdefault("key", key)
    record["tar"] = url
    if options.text_column:
        text = sample.get(options.text_column, record.get(options.text_column))
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace").strip()
        if text is not None:
            record["text"] = text
    column = options.image_column or next((k for k in WDS_IMAGE_KEYS if k in sample), None)
    if column is not None and column in sample:
        _with_image(record, {"bytes": sample[column], "path": f"{key}.{column}"})
    return record


# --- Hugging Face datasets (save_to_disk folders, parquet, arrow, load_dataset folders) ------------------


def _hf_records(path: str, fmt: str, options: InputSettings, ctx: StageContext) -> Iterator[dict[str, Any]]:
    dataset = _load_dataset(path, fmt, options)
    rows: Iterator[dict[str, Any]] | None = None
    names = list(dataset.column_names or ())
    if not names:  # csv or json streamed: the columns are known from the first row
        rows = iter(dataset)
        first = next(rows, None)
        names = list(first or ())
        rows = itertools.chain([first] if first is not None else [], rows)
    dataset, image_column, drop = _hf_columns(path, dataset, names, options)
    text_column = options.text_column
    if text_column and names and text_column not in names:
        raise UsageError(f"--text-column {text_column}: {path} has the columns {', '.join(names)}")
    try:
        for row in dataset if rows is None else rows:
            record: dict[str, Any] = {}
            for key, value in row.items():
                if key == image_column or key in drop or not _json_value(value):
                    continue
                record["text" if key == text_column else key] = value
            if record.get("id") is not None:
                record.setdefault(SOURCE_ID, record["id"])  # kept when a stage gives the record its own id
            yield _identified(_with_image(record, row.get(image_column)))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the dataset: {exc}") from None


def _load_dataset(path: str, fmt: str, options: InputSettings) -> Any:
    """A datasets Dataset / IterableDataset of one split (streaming where that avoids a cache copy)."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        if fmt == "hf" and any(os.path.exists(os.path.join(path, m)) for m in HF_SAVED_MARKERS):
            loaded = datasets.load_from_disk(path)
        elif fmt == "hf":
            loaded = datasets.load_dataset(path, streaming=True)
        else:
            loaded = datasets.load_dataset(fmt, data_files=path, streaming=True)
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise InputError(f"{path}: cannot load it as {DESCRIBED[fmt]}: {exc}") from None
    except Exception as exc:  # pyarrow's errors (ArrowInvalid, ...) are not OSError/ValueError subclasses
        raise InputError(f"{path}: cannot load it as {DESCRIBED[fmt]}: {type(exc).__name__}: {exc}") from None
    if isinstance(loaded, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        splits = list(loaded)
        split = options.split or (splits[0] if len(splits) == 1 else "train" if "train" in splits else None)
        if split not in loaded:
            raise UsageError(f"{path} has the splits {', '.join(splits)}: pass --split NAME")
        loaded = loaded[split]
    elif options.split:
        raise UsageError(f"--split {options.split}: {path} holds one split")
    return loaded


def _hf_columns(
    path: str, dataset: Any, columns: list[str], options: InputSettings
) -> tuple[Any, str, set[str]]:
    """The dataset with its Image columns cast to decode=False (their bytes reach the one image decoder,
    not PIL inside `datasets`), the image column, and the columns left out (other image columns)."""
    import datasets

    features = dataset.features or {}
    image_features = [k for k, f in features.items() if isinstance(f, datasets.Image)]
    column = options.image_column or (
        "image" if "image" in columns else image_features[0] if len(image_features) == 1 else None
    )
    if column is None or (columns and column not in columns):
        listed = ", ".join(columns) or "none"
        raise UsageError(f"{path}: no image column found (columns: {listed}): pass --image-column NAME")
    if isinstance(features.get(column), datasets.Sequence | list):
        raise UsageError(f"{path}: column '{column}' holds several images per row; one image per row is read")
    for name in image_features:
        dataset = dataset.cast_column(name, datasets.Image(decode=False))
    return dataset, column, set(image_features) - {column}
