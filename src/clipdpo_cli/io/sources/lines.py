"""The jsonl reader: JSON lines (.jsonl, .jsonl.gz, stdin, a pipe) through io.jsonl's batch reader; a gzip
file not named .gz is read as such when --input-format jsonl says so."""

from __future__ import annotations

import gzip
import os
from typing import Any

from clipdpo_cli.io.jsonl import BadLineHandler, LineSource, iter_records, read_batches
from clipdpo_cli.io.sources.formats import InputSettings, Read, head_bytes, sniff
from clipdpo_cli.io.stage import StageContext


def read_lines(
    path: str, options: InputSettings, ctx: StageContext, on_bad_line: BadLineHandler, counter: list[int]
) -> Read:
    """The records of JSON lines, each line up to --max-record-size (longer ones: on_bad_line)."""
    source = lines_of(path)
    batches = read_batches(source.open(), max_line=options.max_record_size, on_bad_line=on_bad_line)
    return Read(iter_records(batches, on_bad_line, None, counter, "stdin" if path == "-" else path), source)


def lines_of(path: str) -> LineSource:
    """The path's lines as a LineSource (gzip read where the bytes are gzip and the name is not .gz)."""
    return _GzipLines(path) if _gzip_unnamed(path) else LineSource(path)


def _gzip_unnamed(path: str) -> bool:
    named_plain = path != "-" and not path.endswith(".gz")
    return named_plain and os.path.isfile(path) and sniff(head_bytes(path, 4)) == "gzip"


class _GzipLines(LineSource):
    """A gzip file not named .gz, read as JSON lines because --input-format jsonl said so."""

    def open(self) -> Any:
        self.total_bytes = None
        self._stream = gzip.open(self.path, "rb")
        return self._stream
