"""The webdataset reader: tar shards as img2dataset writes them (KEY.jpg + KEY.json / KEY.txt;
`{00000..00009}` ranges and folders of .tar files too; a .tar.gz or a pipe read once), through the
`webdataset` library's grouping; each member read only up to --max-record-size."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from typing import IO, Any

import orjson

from clipdpo_cli.io.errors import BadRecord, InputError
from clipdpo_cli.io.jsonl import GZIP_MAGIC, BadLineHandler, gunzipped
from clipdpo_cli.io.records import make_id
from clipdpo_cli.io.sources.byte_images import IMAGE_BYTES, SOURCE_ID, with_image
from clipdpo_cli.io.sources.formats import InputSettings, Read, counted, is_pattern
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.io.streams import is_stream, open_stream, stream_head

WDS_IMAGE_KEYS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")


def read_webdataset(
    path: str, options: InputSettings, ctx: StageContext, on_bad_line: BadLineHandler, counter: list[int]
) -> Read:
    """One record per sample (see _webdataset_records); its image as bytes, written by InputSource.prepare."""
    return Read(counted(_webdataset_records(path, options, ctx), counter))


def _webdataset_records(path: str, options: InputSettings, ctx: StageContext) -> Iterator[dict[str, Any]]:
    """One record per sample: the sample's .json fields, `key`, `tar` and the image (see with_image).

    The members come from _tar_members (each read only up to --max-record-size); webdataset's
    group_by_keys gathers them into samples. A sample with a member over the cap, or whose .json is not
    a usable object, is a bad record.
    """
    from webdataset.shardlists import expand_urls
    from webdataset.tariterators import group_by_keys

    if os.path.isdir(path):
        urls = sorted(os.path.join(path, n) for n in os.listdir(path) if n.lower().endswith(".tar"))
    else:
        urls = expand_urls(path) if is_pattern(path) else [path]
    try:
        for sample in group_by_keys(_tar_members(urls, options.max_record_size)):
            try:
                yield _webdataset_record(sample, options)
            except BadRecord as exc:
                key, url = sample["__key__"], os.path.basename(str(sample.get("__url__", "")))
                ctx.bad(None, exc, where=f"{url}: sample {key}")
    except (OSError, ValueError, EOFError, tarfile.TarError) as exc:
        raise InputError(f"{path}: cannot read the tar shards: {exc}") from None


def _open_tar(url: str) -> IO[bytes]:
    """A tar shard's bytes, a .tar.gz decompressed by gzip's reader (bounded chunks; tarfile's own
    decompression inflates each 16 KiB it reads at once, up to 16 MiB of zeros)."""
    if is_stream(url):
        stream = open_stream(url)
        return gunzipped(stream) if stream_head(url, 2) == GZIP_MAGIC else stream
    fh = open(url, "rb")
    gz = fh.read(2) == GZIP_MAGIC
    fh.seek(0)
    return gunzipped(fh) if gz else fh


class _TooLarge(int):
    """The size of an archive member that was not read (over --max-record-size)."""


def _tar_members(urls: list[str], cap: int) -> Iterator[dict[str, Any]]:
    """The regular members of each tar (.tar.gz too; a pipe read once) as webdataset's file samples
    {fname, data, __url__}, an empty dict after each shard; a member over `cap` bytes is not read (its
    data is a _TooLarge), so memory never holds more than `cap` bytes of one member."""
    for url in urls:
        with _open_tar(url) as fh, tarfile.open(fileobj=fh, mode="r|*") as tar:
            for info in tar:
                name = info.name
                if not info.isreg() or ("/" not in name and name.startswith("__") and name.endswith("__")):
                    continue
                data: bytes | _TooLarge = _TooLarge(info.size)
                if info.size <= cap:
                    member = tar.extractfile(info)
                    data = member.read(cap + 1) if member is not None else b""
                    if len(data) > cap:
                        data = _TooLarge(len(data))
                yield {"fname": name, "data": data, "__url__": url}
                tar.members = []  # stream mode keeps no index of what was read
        yield {}


def _webdataset_record(sample: dict[str, Any], options: InputSettings) -> dict[str, Any]:
    """A sample as a record; BadRecord for a member over the cap or a .json holding the reserved key."""
    key, url = sample["__key__"], os.path.basename(str(sample.get("__url__", "")))
    for ext, value in sample.items():
        if isinstance(value, _TooLarge):
            raise BadRecord(
                f"member {key}.{ext} is {value:,} bytes, over --max-record-size {options.max_record_size:,}",
                "archive member over --max-record-size",
            )
    record: dict[str, Any] = {"id": make_id("webdataset", url, key)}
    meta = sample.get("json")
    if meta:
        try:
            fields = orjson.loads(meta)
        except orjson.JSONDecodeError:
            fields = {}
        if isinstance(fields, dict):
            if IMAGE_BYTES in fields:
                raise BadRecord(
                    f"{key}.json has a field named {IMAGE_BYTES!r}, which clipdpo keeps for image bytes: "
                    "rename it", "reserved field name"
                )  # fmt: skip
            record.update((k, v) for k, v in fields.items() if k != "id")
            if fields.get("id") is not None:
                record.setdefault(SOURCE_ID, fields["id"])
    record.setdefault("key", key)
    record["tar"] = url
    if options.text_column:
        text = sample.get(options.text_column, record.get(options.text_column))
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace").strip()
        if text is not None:
            record["text"] = text
    column = options.image_column or next((k for k in WDS_IMAGE_KEYS if k in sample), None)
    if column is not None and column in sample:
        with_image(record, {"bytes": sample[column], "path": f"{key}.{column}"})
    return record
