"""Streaming JSONL reading with orjson: constant memory, transparent .gz, the line cap. The writing side
(JsonlWriter, resume repair) is io/jsonl_out.py, importable from here too."""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from itertools import islice, repeat
from operator import and_, not_
from typing import IO, Any, NamedTuple

import orjson

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.jsonfile import write_json  # noqa: F401  (the one JSON writer, also importable here)
from clipdpo_cli.io.jsonl_out import JsonlWriter, existing_records, truncate_partial_line  # noqa: F401
from clipdpo_cli.io.records import FIELD_TYPES, content_id
from clipdpo_cli.io.streams import is_stream, open_stream, stream_head

# Called with (line number, reason, message) for each unusable line; it raises to stop the run.
BadLineHandler = Callable[[int, str, str], None]


def open_binary(path: str) -> IO[bytes]:
    """Open a path, '-' (stdin) or a .gz file for binary reading; a clear InputError otherwise.

    A path that can be read only once (a pipe, a FIFO: io/streams.py) is opened once, with the bytes that
    format sniffing already read given back first; gzip in it is recognised by its bytes.
    """
    if path == "-":
        return sys.stdin.buffer
    if os.path.isdir(path):
        raise InputError(f"{path} is a folder, not a JSONL file")
    try:
        if is_stream(path):
            return gunzipped(open_stream(path)) if stream_head(path, 2) == GZIP_MAGIC else open_stream(path)
        return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"input file not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot open {path}: {exc.strerror or exc}") from None


GZIP_MAGIC = b"\x1f\x8b"


def gunzipped(stream: IO[bytes]) -> IO[bytes]:
    """A gzip stream decompressed as it is read; closing it closes `stream` too."""
    reader = gzip.GzipFile(fileobj=stream, mode="rb")
    reader.myfileobj = stream  # type: ignore[attr-defined]  # what GzipFile closes with itself
    return reader


class LineSource:
    """An input file (or stdin) read as binary lines; knows its size and position for progress."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.total_bytes: int | None = None
        self._stream: IO[bytes] | None = None
        if path != "-" and not is_stream(path):  # a .gz file is measured by its compressed bytes
            try:
                self.total_bytes = os.path.getsize(path)
            except OSError:
                self.total_bytes = None

    def open(self) -> IO[bytes]:
        self._stream = open_binary(self.path)
        return self._stream

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far (0 when the input is not a plain file)."""
        if self._stream is None or self.total_bytes is None:
            return 0
        try:  # the file descriptor's position (of the compressed file for .gz), safe from any thread
            return os.lseek(self._stream.fileno(), 0, os.SEEK_CUR)
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        if self._stream is not None and self._stream is not sys.stdin.buffer:
            self._stream.close()


BATCH_BYTES = 1 << 16  # about 150 scored records: a batch stays in the CPU cache
DEFAULT_MAX_RECORD = 64 << 20  # --max-record-size: the longest JSON line (or archive member) read


class LineBatch(NamedTuple):
    """Consecutive input lines (without their newlines), numbered from `first_lineno`.

    `plain`: the bytes are ASCII and hold no backslash, so no JSON string in them has an escape: their
    only whitespace character is ' ' (JSON forbids raw control characters inside strings).
    """

    lines: list[bytes]
    first_lineno: int
    plain: bool


# Byte values: `int in bytes` is a plain memchr, while `bytes in bytes` first tries the needle as an
# int and raises and clears a TypeError inside, on every call.
_NEWLINE, _BACKSLASH = ord("\n"), ord("\\")


def plain_lines(lines: list[bytes | None]) -> list[bool]:
    """Per line, what LineBatch.plain says of a whole batch (False for None: a line not kept raw)."""
    try:
        no_backslash = map(not_, map(bytes.__contains__, lines, repeat(_BACKSLASH)))
        return list(map(and_, map(bytes.isascii, lines), no_backslash))
    except TypeError:  # a None among the lines
        return [line is not None and line.isascii() and b"\\" not in line for line in lines]


def read_batches(
    stream: IO[bytes],
    size: int = BATCH_BYTES,
    max_line: int | None = None,
    on_bad_line: BadLineHandler | None = None,
) -> Iterator[LineBatch]:
    """Split a binary stream into batches of whole lines, reading about `size` bytes at a time.

    Reads with read1 where the stream has it, so a slow producer's lines flow on without waiting for a
    full block. A line longer than `size` is gathered across reads (no quadratic copying); one longer than
    `max_line` bytes (default DEFAULT_MAX_RECORD) is not kept: it goes to `on_bad_line` (which raises to
    stop, or returns to skip it; without one, InputError) and the rest of it is read past, so memory stays
    within `max_line` + `size`. A skipped line stays in the numbering as a blank line.
    """
    read = getattr(stream, "read1", stream.read)
    name = getattr(stream, "name", "input")
    cap = DEFAULT_MAX_RECORD if max_line is None else max_line
    too_long = _too_long_handler(name, cap, on_bad_line)
    lineno, pending, pending_len, discarding = 1, [], 0, False  # pending: pieces of a line not yet ended
    while True:
        block = _read_block(read, size, name, lineno)
        if not block:
            break
        end = block.find(b"\n")
        if discarding:  # the rest of a line over the cap
            if end < 0:
                continue
            block, discarding = block[end + 1 :], False
            if not block:
                continue
            end = block.find(b"\n")
        if end < 0:
            pending.append(block)
            pending_len += len(block)
            if pending_len > cap:
                too_long(lineno)
                yield LineBatch([b""], lineno, True)
                lineno, pending, pending_len, discarding = lineno + 1, [], 0, True
            continue
        if pending:
            if pending_len + end > cap:
                too_long(lineno)
                block = block[end:]  # the line's place kept, blank
            else:
                pending.append(block)
                block = b"".join(pending)
            pending, pending_len = [], 0
        lines = block.split(b"\n")
        tail = lines.pop()
        if len(block) > cap:  # a cap below the block size: lines within the block may be over it
            tail, discarding = _blank_over_cap(lines, tail, lineno, cap, too_long)
        if tail:
            pending.append(tail)
            pending_len = len(tail)
        yield LineBatch(lines, lineno, block.isascii() and _BACKSLASH not in block)
        lineno += len(lines)
    if pending:
        block = b"".join(pending)
        yield LineBatch([block], lineno, block.isascii() and _BACKSLASH not in block)


def _too_long_handler(name: str, cap: int, on_bad_line: BadLineHandler | None) -> Callable[[int], None]:
    """What read_batches does with line `lineno` over `cap`: on_bad_line's verdict, or InputError."""

    def too_long(lineno: int) -> None:
        if on_bad_line is None:  # a reader without the option (report, train's pairs)
            raise InputError(f"{name}: line {lineno}: a line longer than {cap:,} bytes")
        on_bad_line(lineno, "line over --max-record-size", f"line over --max-record-size ({cap:,} bytes)")

    return too_long


def _read_block(read: Callable[[int], bytes], size: int, name: str, lineno: int) -> bytes:
    try:
        return read(size)
    except (OSError, EOFError) as exc:  # a truncated .gz, a plain file named .gz, a failing disk
        raise InputError(f"{name}: read error after line {lineno - 1}: {exc}") from None


def _blank_over_cap(
    lines: list[bytes], tail: bytes, lineno: int, cap: int, too_long: Callable[[int], None]
) -> tuple[bytes, bool]:
    """Blank (in place, keeping their numbers) the lines of a block longer than `cap`; the unfinished tail,
    blanked too when over it, and whether the rest of that line is to be read past."""
    for i, line in enumerate(lines):
        if len(line) > cap:
            too_long(lineno + i)
            lines[i] = b""
    if len(tail) > cap:
        too_long(lineno + len(lines))
        lines.append(b"")
        return b"", True
    return tail, False


def batches_of(lines: Iterable[bytes], size: int = 256) -> Iterator[LineBatch]:
    """Group an iterable of lines (newlines optional) into batches; `plain` is not claimed."""
    it, lineno = iter(lines), 1
    while chunk := list(islice(it, size)):
        yield LineBatch(chunk, lineno, False)
        lineno += len(chunk)


def decode_batch(
    batch: LineBatch, on_bad_line: BadLineHandler, schema: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], list[bytes | None]]:
    """The batch's records and, beside each, its input line (None where the record was given an id).

    Blank lines are ignored; each bad line goes to `on_bad_line`, which raises to stop or returns to skip
    it. A record without an `id` gets a content hash as its first field. The common case (every line a
    JSON object with an id, no schema) runs in a few C-level passes and returns `batch.lines` itself as
    the lines; anything else is decoded line by line.
    """
    lines = batch.lines
    if not schema:
        try:
            records = list(map(_loads, lines))
            # dict.__contains__ raises TypeError on a record that is not an object
            if all(map(dict.__contains__, records, repeat("id"))):
                return records, lines
        except (_DecodeError, TypeError):
            pass
    return _decode_lines(batch, on_bad_line, schema)


_loads, _DecodeError = orjson.loads, orjson.JSONDecodeError


def _decode_lines(
    batch: LineBatch, on_bad_line: BadLineHandler, schema: dict[str, str] | None
) -> tuple[list[dict[str, Any]], list[bytes | None]]:
    checks = [(f, FIELD_TYPES[k], k) for f, k in (schema or {}).items()]
    records: list[dict[str, Any]] = []
    kept: list[bytes | None] = []
    for lineno, line in enumerate(batch.lines, batch.first_lineno):
        try:
            record = _loads(line)
        except _DecodeError as exc:
            if not line.strip():
                continue
            reason = "invalid UTF-8" if "UTF-8" in str(exc) else "invalid JSON"
            on_bad_line(lineno, reason, f"{reason}: {exc}")
            continue
        if record.__class__ is not dict:
            on_bad_line(lineno, "not a JSON object", f"not a JSON object (got {type(record).__name__})")
            continue
        raw: bytes | None = line
        if "id" not in record:
            record, raw = {"id": content_id(record), **record}, None
        if checks and not _fits(record, checks, lineno, on_bad_line):
            continue
        records.append(record)
        kept.append(raw)
    return records, kept


def iter_records(
    batches: Iterable[LineBatch],
    on_bad_line: BadLineHandler,
    schema: dict[str, str] | None = None,
    counter: list[int] | None = None,
    name: str = "input",
) -> Iterator[dict[str, Any]]:
    """The records of decoded batches (see decode_batch); `counter[0]`, when given, counts them."""
    lineno = 0
    try:
        for batch in batches:
            lineno = batch.first_lineno
            records = decode_batch(batch, on_bad_line, schema)[0]
            if counter is not None:
                counter[0] += len(records)
            yield from records
    except (OSError, EOFError) as exc:  # e.g. a truncated .gz
        raise InputError(f"{name}: read error after line {lineno}: {exc}") from None


def parse_lines(
    lines: Iterable[bytes],
    on_bad_line: BadLineHandler,
    schema: dict[str, str] | None = None,
    counter: list[int] | None = None,
    name: str = "input",
) -> Iterator[dict[str, Any]]:
    """Decode JSON objects, give each a stable `id` (content hash when missing) and check `schema`.

    `schema` maps a field name to a kind of records.FIELD_TYPES ('str', 'number', ...). Blank lines are
    ignored. Each bad line goes to `on_bad_line`, which raises to stop or returns to skip it.
    `counter[0]`, when given, counts the records yielded.
    """
    return iter_records(batches_of(lines), on_bad_line, schema, counter, name)


def _fits(
    record: dict[str, Any],
    checks: list[tuple[str, tuple[type, ...], str]],
    lineno: int,
    on_bad_line: BadLineHandler,
) -> bool:
    """Whether the record has every schema field with the right type; reports the first problem."""
    for field, types, kind in checks:
        value = record.get(field)
        if not isinstance(value, types) or (kind == "number" and isinstance(value, bool)):
            if field not in record:
                on_bad_line(lineno, f"missing field '{field}'", f"missing field '{field}'")
            else:
                got = "null" if value is None else type(value).__name__
                on_bad_line(
                    lineno, f"mistyped field '{field}'", f"field '{field}' must be a {kind}, got {got}"
                )
            return False
    return True


def read_jsonl(path: str, schema: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """Records of a JSONL file for library use: the first bad line raises InputError with its number."""

    def fail(lineno: int, _reason: str, message: str) -> None:
        raise InputError(f"{path}: line {lineno}: {message}")

    source = LineSource(path)
    try:
        yield from iter_records(read_batches(source.open()), fail, schema, name=path)
    finally:
        source.close()
