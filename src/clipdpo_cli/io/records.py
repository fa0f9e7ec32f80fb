"""The record contract: stable ids and typed field access (see docs/records.md)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from clipdpo_cli.io.errors import BadRecord

_SEP = "\x1f"

# Python types accepted for each declared field kind.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "number": (int, float),
    "list": (list,),
    "object": (dict,),
    "bool": (bool,),
}


def make_id(*parts: object) -> str:
    """A stable 16-hex-digit id derived from the parts (same parts, same id, on every machine)."""
    joined = _SEP.join("" if p is None else str(p) for p in parts)
    return hashlib.blake2b(joined.encode("utf-8"), digest_size=8).hexdigest()


def content_id(record: dict[str, Any]) -> str:
    """The id of a record that came without one: a hash of its canonical JSON."""
    return hashlib.blake2b(orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()


def id_key(value: Any) -> Any:
    """What an `id` is compared by (--resume, de-duplication): JSON value and JSON type both count.

    A string id is its own key (so stages' own string ids compare as they are); any other id (an integer
    as in COCO, a float, a list) is its JSON text as bytes, which never equals a string: 1000 and "1000"
    are different ids, 1 and 1.0 too, and an unhashable id still has a key.
    """
    if value.__class__ is str:
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not JSON (a Python caller's object, an int over 64 bits): its repr stands for it
        return repr(value).encode()


def record_key(record: dict[str, Any]) -> Any:
    """A written record's key for --resume: the id_key of its `id`, or for a record without one (some
    rejects) a hash of its content (a tuple, so it never equals an id key)."""
    if "id" in record:
        return id_key(record["id"])
    return ("content", content_id(record))


def require(record: dict[str, Any], field: str, kind: str = "str", hint: str = "") -> Any:
    """The value of `field`, or BadRecord naming the field and what was wrong with it."""
    try:
        value = record[field]
    except KeyError:
        raise BadRecord(f"missing field '{field}'{hint}", reason=f"missing field '{field}'") from None
    types = FIELD_TYPES[kind]
    if not isinstance(value, types) or (kind == "number" and isinstance(value, bool)):
        got = "null" if value is None else type(value).__name__
        raise BadRecord(
            f"field '{field}' must be {'a' if kind != 'object' else 'an'} {kind}, got {got}{hint}",
            reason=f"mistyped field '{field}'",
        )
    return value
