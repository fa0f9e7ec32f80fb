"""JSONL output: the writer of every record stream (whole lines only ever reach a file; .gz; appends for
--resume) and the repair of a file a crash left with half a line (`existing_records`: what --resume skips)."""

from __future__ import annotations

import gzip
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from clipdpo_cli.io.errors import InputError

_DUMP_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY


class JsonlWriter:
    """Writes one JSON object per line to stdout or a file; only whole lines ever reach a file.

    A file is opened (and so replaced) at the first record, not before: a run that stops before it writes
    anything (a refused request, a bad first input) leaves an existing -o as it was. A run that ends without
    error and without records still leaves an empty file."""

    def __init__(self, path: str | None = None, append: bool = False) -> None:
        self.path = None if path in (None, "-") else path
        self.count = 0
        self._fh: IO[bytes] | None = None
        self._mode = "ab" if append else "wb"
        if self.path is None:
            if sys.stdout is None:  # started with stdout closed (`>&-`)
                raise InputError("stdout is closed: write the output to a file with -o FILE")
            self._fh = sys.stdout.buffer
        elif os.path.exists(self.path) and not os.path.isfile(self.path):
            self._open()  # a pipe, FIFO or terminal (-o >(...)): opened now, there is nothing to keep
        else:  # a regular file: checked now (fail before any work), opened at the first record
            parent = os.path.dirname(self.path) or "."
            target = self.path if os.path.exists(self.path) else parent
            if not os.path.isdir(parent):
                raise InputError(f"cannot write {self.path}: No such file or directory")
            if not os.access(target, os.W_OK):
                raise InputError(f"cannot write {self.path}: Permission denied")

    def _open(self) -> IO[bytes]:
        """The output, opened at the first call (a file is replaced then, not before)."""
        if self._fh is None:
            assert self.path is not None
            opener = gzip.open if self.path.endswith(".gz") else open
            try:
                self._fh = opener(self.path, self._mode)  # type: ignore[operator]
            except OSError as exc:
                raise InputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        return self._fh

    def write(self, record: dict[str, Any]) -> None:
        self._open().write(orjson.dumps(record, option=_DUMP_OPTS))
        self.count += 1

    def write_lines(self, lines: list[bytes]) -> None:
        """Write lines that are already JSON objects (without their newlines)."""
        if lines:
            self._open().write(b"\n".join([*lines, b""]))
            self.count += len(lines)

    def write_all(self, records: Iterable[dict[str, Any]]) -> None:
        """Write every record (a tighter loop than calling write() per record)."""
        records = iter(records)
        first = next(records, None)
        if first is None:
            return
        write, dumps = self._open().write, orjson.dumps
        write(dumps(first, option=_DUMP_OPTS))
        n = 1
        try:
            for record in records:
                write(dumps(record, option=_DUMP_OPTS))
                n += 1
        finally:
            self.count += n

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self, failed: bool = False) -> None:
        """Flush and close; a plain output file is cut back to its last complete line if need be. A file
        never opened is created empty (replacing an old one) unless the run `failed`: then it is left as
        it was."""
        if self._fh is None:
            if failed or self.path is None:
                return
            self._open()  # a run without records writes an empty file
        try:
            self._fh.flush()
        finally:
            if self.path is not None:
                try:
                    self._fh.close()  # a full disk fails this flush too, but the file is closed
                finally:
                    if not self.path.endswith(".gz"):
                        truncate_partial_line(self.path)

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(failed=exc_type is not None)


def truncate_partial_line(path: str) -> None:
    """Cut a file back to just after its last newline (drops a line a crash left half-written). Only a
    regular file: a pipe, a FIFO or a terminal (`-o /dev/stdout`, `-o >(gzip > x.gz)`) cannot be cut."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return
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
