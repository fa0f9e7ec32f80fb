"""Grouping records by image: streamed runs for grouped input, or a disk spill for any order.

Used by every stage that works on all records of one image at a time (`ask`, `pair`). A group holds each
id once: a record whose id was already seen in its group (duplicated input, `cat a a`) is left out and
counted as "duplicate id" (StageContext.duplicate), on both paths.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from clipdpo_cli.io.errors import BadRecord, InputError
from clipdpo_cli.io.records import id_key, require
from clipdpo_cli.io.stage import StageContext

INPUT_ORDERS = ("grouped", "any")


def groups_by_image(
    records: Iterable[dict[str, Any]], ctx: StageContext, input_order: str = "grouped"
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(image, records) groups: streamed runs for 'grouped' input, a disk spill for 'any' order.

    Each group holds an id once (see unique_ids).
    """
    if input_order == "grouped":
        return unique_ids(contiguous_groups(records, ctx), ctx)
    if input_order == "any":
        return unique_ids(spilled_groups(records, ctx), ctx)
    raise ValueError(f"input_order must be one of {INPUT_ORDERS}, not {input_order!r}")


def unique_ids(
    groups: Iterable[tuple[str, list[dict[str, Any]]]], ctx: StageContext
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The groups with each id once: a later record with an id already seen in its group is a duplicate,
    left out (its first record stays, in place) and counted by ctx.duplicate."""
    for image, group in groups:
        seen: set[Any] = set()
        unique = []
        for record in group:
            rid = record.get("id")  # a library caller's record may have none: it is not compared
            key = rid if rid.__class__ is str else id_key(rid)
            if rid is not None and key in seen:
                ctx.duplicate(record)
            else:
                seen.add(key)
                unique.append(record)
        yield image, unique


def _with_images(
    records: Iterable[dict[str, Any]], ctx: StageContext
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(image, record) for each record with a string `image`; the others go to the error policy."""
    for record in records:
        try:
            image = require(record, "image")
        except BadRecord as exc:
            ctx.bad(record, exc)
            continue
        yield image, record


def contiguous_groups(
    records: Iterable[dict[str, Any]], ctx: StageContext
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Runs of records with the same image; an image that comes back after its run is an error."""
    closed: set[int] = set()
    current: str | None = None
    group: list[dict[str, Any]] = []
    for image, record in _with_images(records, ctx):
        if image != current:
            if current is not None:
                yield current, group
                closed.add(hash(current))
            if hash(image) in closed:
                raise InputError(
                    f"the input is not grouped by image ({image} appears again after other images); "
                    "rerun with --input-order any (spills to disk), or sort the input by image"
                )
            current, group = image, []
        group.append(record)
    if current is not None:
        yield current, group


def spilled_groups(
    records: Iterable[dict[str, Any]], ctx: StageContext, buckets: int = 64
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Group any order of records: spill them to `buckets` temp files by image hash, then group each file."""
    with tempfile.TemporaryDirectory(prefix="clipdpo-groups-") as tmp:
        paths = [os.path.join(tmp, f"{i}.jsonl") for i in range(buckets)]
        files = [open(p, "wb") for p in paths]
        try:
            for image, record in _with_images(records, ctx):
                files[zlib.crc32(image.encode("utf-8")) % buckets].write(
                    orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
                )
        finally:
            for fh in files:
                fh.close()
        for path in paths:
            groups: dict[str, list[dict[str, Any]]] = {}
            with open(path, "rb") as fh:
                for line in fh:
                    record = orjson.loads(line)
                    groups.setdefault(record["image"], []).append(record)
            os.unlink(path)
            yield from groups.items()
