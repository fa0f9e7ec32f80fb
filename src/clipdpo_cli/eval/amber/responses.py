"""Responses to score: the official format (a JSON list of {"id", "response"}) or JSONL."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.jsonl import open_binary
from clipdpo_cli.io.log import note

_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def _check(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected an object with id and response, got {type(item).__name__}")
    rid = item.get("id")
    if isinstance(rid, str) and rid.isdigit():
        rid = int(rid)
    if not isinstance(rid, int) or isinstance(rid, bool):
        raise InputError(f"{where}: field 'id' must be the AMBER question id (an integer), got {rid!r}")
    response = item.get("response")
    if not isinstance(response, str):
        raise InputError(f"{where}: field 'response' must be a string, got {type(response).__name__}")
    return {**item, "id": rid}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _replace_surrogates(value: Any) -> tuple[Any, int]:
    """`value` with every unpaired surrogate in its strings (keys too) replaced by U+FFFD, and how many
    strings had one."""
    if isinstance(value, str):
        fixed = _SURROGATE.sub(REPLACEMENT, value)
        return fixed, int(fixed != value)
    if isinstance(value, list):
        pairs = [_replace_surrogates(v) for v in value]
        return [v for v, _ in pairs], sum(n for _, n in pairs)
    if isinstance(value, dict):
        out, count = {}, 0
        for key, v in value.items():
            new_key, n_key = _replace_surrogates(key)
            out[new_key], n_value = _replace_surrogates(v)
            count += n_key + n_value
        return out, count
    return value, 0


def _loads(data: bytes) -> tuple[Any, int]:
    """Parsed JSON and the number of strings in which an unpaired surrogate escape was replaced.

    orjson refuses an escape such as "\\ud800" without its pair; the official scorer's json module reads
    it. Only then is the text parsed again with the json module (still strict: no NaN/Infinity), and each
    unpaired surrogate becomes U+FFFD, so that the text can be written back as UTF-8. orjson's error is
    kept for anything else."""
    try:
        return orjson.loads(data), 0
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in str(exc):
            raise
        try:
            parsed = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError):
            raise exc from None
        return _replace_surrogates(parsed)


def read_responses(path: str, quiet: bool = False) -> list[dict[str, Any]]:
    """Responses in file order, each with an int `id` and a str `response` (InputError otherwise).

    Unpaired surrogate escapes ("\\ud800" alone) are read as U+FFFD, with one note on stderr per file
    (none when `quiet`)."""
    stream = open_binary(path)
    try:
        data = stream.read()
    finally:
        if path != "-":
            stream.close()
    name = "stdin" if path == "-" else path
    replaced = 0
    if data.lstrip()[:1] == b"[":
        try:
            items, replaced = _loads(data)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{name}: invalid JSON: {exc}") from None
        out = [_check(item, f"{name}: item {i}") for i, item in enumerate(items)]
    else:
        out = []
        for lineno, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item, n = _loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"{name}: line {lineno}: invalid JSON: {exc}") from None
            replaced += n
            out.append(_check(item, f"{name}: line {lineno}"))
    if replaced:
        note(
            "eval-amber",
            f"{name}: {replaced} string(s) with an unpaired surrogate escape "
            "(\\ud800-\\udfff without its pair), read as U+FFFD; the official scorer reads them too",
            quiet,
        )
    return out
