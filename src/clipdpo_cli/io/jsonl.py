"""Streaming JSONL reading and writing with orjson: constant memory, transparent .gz, safe appends."""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import orjson

from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.io.records import FIELD_TYPES, content_id

_DUMP_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY

# Called with (line number, reason, message) for each unusable line; it raises to stop the run.
BadLineHandler = Callable[[int, str, str], None]


def open_binary(path: str) -> IO[bytes]:
    """Open a path, '-' (stdin) or a .gz file for binary reading; a clear InputError otherwise."""
    if path == "-":
        return sys.stdin.buffer
    if os.path.isdir(path):
        raise InputError(f"{path} is a folder, not a JSONL file")
    try:
        return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"input file not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot open {path}: {exc.strerror or exc}") from None


class LineSource:
    """An input file (or stdin) read as binary lines; knows its size and position for progress."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.total_bytes: int | None = None
        self._stream: IO[bytes] | None = None
        if path != "-" and not path.endswith(".gz"):
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
        try:
            return self._stream.tell()
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        if self._stream is not None and self._stream is not sys.stdin.buffer:
            self._stream.close()


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
    loads, decode_error, dict_, content = orjson.loads, orjson.JSONDecodeError, dict, content_id
    checks = [(f, FIELD_TYPES[k], k) for f, k in (schema or {}).items()]
    lineno = n = 0
    try:
        for line in lines:
            lineno += 1
            try:
                record = loads(line)
            except decode_error as exc:
                if not line.strip():
                    continue
                reason = "invalid UTF-8" if "UTF-8" in str(exc) else "invalid JSON"
                on_bad_line(lineno, reason, f"{reason}: {exc}")
                continue
            if record.__class__ is not dict_:
                on_bad_line(lineno, "not a JSON object", f"not a JSON object (got {type(record).__name__})")
                continue
            if "id" not in record:
                record = {"id": content(record), **record}
            if checks and not _fits(record, checks, lineno, on_bad_line):
                continue
            n += 1
            yield record
    except (OSError, EOFError) as exc:  # e.g. a truncated .gz
        raise InputError(f"{name}: read error after line {lineno}: {exc}") from None
    finally:
        if counter is not None:
            counter[0] += n


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
        yield from parse_lines(source.open(), fail, schema, name=path)
    finally:
        source.close()


class JsonlWriter:
    """Writes one JSON object per line to stdout or a file; only whole lines ever reach a file."""

    def __init__(self, path: str | None = None, append: bool = False) -> None:
        self.path = None if path in (None, "-") else path
        self.count = 0
        if self.path is None:
            self._fh: IO[bytes] = sys.stdout.buffer
        else:
            mode = "ab" if append else "wb"
            try:
                if self.path.endswith(".gz"):
                    self._fh = gzip.open(self.path, mode)
                else:
                    self._fh = open(self.path, mode)
            except OSError as exc:
                raise InputError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(orjson.dumps(record, option=_DUMP_OPTS))
        self.count += 1

    def write_all(self, records: Iterable[dict[str, Any]]) -> None:
        """Write every record (a tighter loop than calling write() per record)."""
        write, dumps, n = self._fh.write, orjson.dumps, 0
        try:
            for record in records:
                write(dumps(record, option=_DUMP_OPTS))
                n += 1
        finally:
            self.count += n

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        """Flush and close; a plain output file is cut back to its last complete line if need be."""
        try:
            self._fh.flush()
        finally:
            if self.path is not None:
                self._fh.close()
                if not self.path.endswith(".gz"):
                    truncate_partial_line(self.path)

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def truncate_partial_line(path: str) -> None:
    """Cut a file back to just after its last newline (drops a line a crash left half-written)."""
    try:
        fh = open(path, "r+b")
    except FileNotFoundError:
        return
    with fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        pos, chunk = size, 1 << 16
        while pos > 0:
            start = max(0, pos - chunk)
            fh.seek(start)
            idx = fh.read(pos - start).rfind(b"\n")
            if idx >= 0:
                fh.truncate(start + idx + 1)
                return
            pos = start
        fh.truncate(0)


def existing_records(path: str, repair: bool = True) -> Iterator[dict[str, Any]]:
    """The objects already in an output file (to resume it); a half-written last line is cut first.

    Lines that do not decode are passed over: the file is our own output, and only its tail can be torn.
    """
    if repair:
        truncate_partial_line(path)
    with open(path, "rb") as fh:
        for line in fh:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record


def done_ids(path: str) -> set[str]:
    """Ids already in an output file (for --resume); repairs a half-written last line first."""
    if path.endswith(".gz"):
        raise UsageError("--resume needs an uncompressed -o file (a killed .gz stream cannot be appended)")
    if not os.path.exists(path):
        return set()
    return {r["id"] for r in existing_records(path) if isinstance(r.get("id"), str)}
