"""Images that arrive as bytes (an Image column, a binary column, a webdataset member): named by their
content hash while the record travels (the bytes under the private field IMAGE_BYTES), then checked by the
one image decoder (io.images.verify_image_bytes) and written once under --extract-images-to (default: beside
-o), so later stages open them as files; the written record keeps the hash as `image_hash`."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import orjson

from clipdpo_cli.io.errors import BadRecord, InputError, UsageError
from clipdpo_cli.io.images import IMAGE_EXTENSIONS, verify_image_bytes
from clipdpo_cli.io.records import content_id
from clipdpo_cli.io.stage import StageContext

# The private field of a record whose image is still bytes; InputSource.prepare writes it and removes it.
IMAGE_BYTES = "\x00image_bytes"
IMAGE_HASH = "image_hash"  # of an image that came as bytes: its content hash (the written file's name stem)
SOURCE_ID = "source_id"  # a dataset row's / webdataset sample's own `id` (the record's id may be another)

_MAGIC = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG", ".png"), (b"GIF8", ".gif"), (b"BM", ".bmp"),
          (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"))  # fmt: skip


def image_name(data: bytes, hint: str | None) -> str:
    """A content-hash file name for image bytes, with the extension of `hint` (a path or key) or its magic."""
    ext = os.path.splitext(hint or "")[1].lower()
    if ext not in IMAGE_EXTENSIONS:
        ext = next((e for magic, e in _MAGIC if data.startswith(magic)), "")
        if not ext and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            ext = ".webp"
    return hashlib.blake2b(data, digest_size=16).hexdigest() + (ext or ".img")


_PLAIN = (str, int, float, bool, type(None))


def json_value(value: Any) -> bool:
    """Whether a column's value can go into a JSON record (binary data, and lists holding it, cannot)."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (bytes, bytearray, memoryview)):
        return False
    try:
        orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return False
    return True


def with_image(record: dict[str, Any], value: Any) -> dict[str, Any]:
    """Put an image value (a path, bytes, or a datasets Image {bytes, path}) into `record`."""
    data, path = None, None
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, str):
        path = value
    if data:
        record["image"] = image_name(bytes(data), path)
        record[IMAGE_BYTES] = bytes(data)
    elif path:
        record["image"] = path
    return record

def identified(record: dict[str, Any]) -> dict[str, Any]:
    """The record with an id: its own, or the hash of its content (the image by its name, not its bytes)."""
    if isinstance(record.get("id"), (str, int)):
        return record
    data = record.pop(IMAGE_BYTES, None)
    record = {"id": content_id(record), **{k: v for k, v in record.items() if k != "id"}}
    if data is not None:
        record[IMAGE_BYTES] = data
    return record

def written_images(
    records: Iterator[dict[str, Any]], image_dir: str | None, ctx: StageContext
) -> Iterator[dict[str, Any]]:
    """The records with every image that came as bytes checked and written under `image_dir` (created on the
    first; a bad image, or a record holding IMAGE_BYTES of its own, is ctx.bad)."""
    folder = None
    for record in records:
        data = record.pop(IMAGE_BYTES, None)
        if data is not None and not (isinstance(data, bytes) and isinstance(record.get("image"), str)):
            ctx.bad(record, BadRecord(f"a field named {IMAGE_BYTES!r}, which clipdpo keeps for image "
                                      "bytes: rename it", "reserved field name"))  # fmt: skip
            continue
        if data is not None:
            if folder is None:
                folder = make_folder(image_dir)
            name = record["image"]
            try:
                record["image"] = write_image(folder, name, data)
                record[IMAGE_HASH] = os.path.splitext(name)[0]
            except BadRecord as exc:
                record["image"] = os.path.join(folder, record["image"])
                ctx.bad(record, exc)
                continue
        yield record


def make_folder(folder: str | None) -> str:
    if folder is None:
        raise UsageError(
            "the input holds images as bytes: pass --extract-images-to DIR (each is written there once, by "
            "content hash, for the later stages) or -o FILE (then FILE's name + '-images/')"
        )
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--extract-images-to {folder}: cannot create it: {exc.strerror or exc}") from None
    return os.path.abspath(folder)


def write_image(folder: str, name: str, data: bytes) -> str:
    """Write an image (once: its name is its content hash) after the decoder checked it; its path."""
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        verify_image_bytes(data, path)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def default_image_dir(output: str | None) -> str | None:
    """Beside -o FILE: FILE's name without .jsonl/.gz + '-images'; None for stdout."""
    if not output or output == "-":
        return None
    stem = output
    for suffix in (".gz", ".jsonl", ".json"):
        stem = stem.removesuffix(suffix)
    return stem + "-images"
