"""The json reader: a JSON array read whole; LLaVA / ShareGPT SFT data (entries with `conversations` or
`messages`) gives one record per distinct image (text-only entries skipped and counted, the entry ids kept as
`sft_id` / `sft_ids`, the conversations left out); any other array one record per entry."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import orjson

from clipdpo_cli.io.errors import BadRecord, InputError
from clipdpo_cli.io.jsonl import BadLineHandler, open_binary
from clipdpo_cli.io.records import content_id, make_id
from clipdpo_cli.io.sources.formats import InputSettings, Read, counted
from clipdpo_cli.io.stage import StageContext

SFT_FIELDS = ("conversations", "messages")  # the dialogue of an SFT entry: not copied into records


def read_json_array(
    path: str, options: InputSettings, ctx: StageContext, on_bad_line: BadLineHandler, counter: list[int]
) -> Read:
    """The records of a JSON array (see the module)."""
    return Read(counted(_json_records(path, ctx), counter))


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
