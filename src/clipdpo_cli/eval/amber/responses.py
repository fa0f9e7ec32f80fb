"""Responses to score: the official format (a JSON list of {"id", "response"}) or JSONL."""

from __future__ import annotations

import re
from typing import Any

import orjson

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.jsonl import open_binary

_YES_NO = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


def normalize_answer(text: str) -> str:
    """'Yes'/'No' when the text starts with the word yes or no in any case ("yes.", "No, there is ...",
    " YES"); anything else unchanged. Used by --normalize-answers (off by default: the official scorer
    accepts only the exact strings)."""
    match = _YES_NO.match(text)
    if not match:
        return text
    return "Yes" if match.group(1).lower() == "yes" else "No"


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


def read_responses(path: str) -> list[dict[str, Any]]:
    """Responses in file order, each with an int `id` and a str `response` (InputError otherwise)."""
    stream = open_binary(path)
    try:
        data = stream.read()
    finally:
        if path != "-":
            stream.close()
    name = "stdin" if path == "-" else path
    if data.lstrip()[:1] == b"[":
        try:
            items = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{name}: invalid JSON: {exc}") from None
        return [_check(item, f"{name}: item {i}") for i, item in enumerate(items)]
    out = []
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{name}: line {lineno}: invalid JSON: {exc}") from None
        out.append(_check(item, f"{name}: line {lineno}"))
    return out
