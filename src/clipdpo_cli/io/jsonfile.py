"""The one writer of whole JSON documents: a command's result (stdout or -o), a metrics file, a side file
such as dataset_info.json or a run's marker. Records (JSON lines) go through io.jsonl.JsonlWriter instead.

A file is written whole or not at all: to a temporary name beside it, then renamed over it, so a crash or a
full disk never leaves half a document where a reader (or the next run) expects one. A path that is not a
regular file (/dev/null, a FIFO, /dev/stdout) is written in place; a symlink's target is replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from typing import Any

import orjson

from clipdpo_cli.io.errors import InputError


def json_bytes(value: Any, indent: int | None = 2) -> bytes:
    """`value` as a JSON document ending in a newline: indented by two (orjson: UTF-8, numpy values too),
    or by `indent` in the standard library's layout (ASCII, \\u escapes; 0: each item on its own line
    unindented; None: one line)."""
    if indent == 2:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n"
    return json.dumps(value, indent=indent).encode("ascii") + b"\n"


def write_json(value: Any, output: str | None = None, indent: int | None = 2) -> None:
    """One JSON document (see json_bytes) to the file `output`, whole (see the module), or to stdout for
    None / '-'; InputError when the file cannot be written."""
    payload = json_bytes(value, indent)
    if not output or output == "-":
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()
        return
    try:
        _write_whole(output, payload)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from None


def _write_whole(path: str, payload: bytes) -> None:
    target = os.path.realpath(path)
    try:
        regular = stat.S_ISREG(os.stat(target).st_mode)
    except FileNotFoundError:
        regular = True
    if not regular:  # /dev/null, a FIFO: nothing to replace
        with open(target, "wb") as fh:
            fh.write(payload)
        return
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
