"""Streaming record I/O shared by every stage: JSONL in and out, ids, errors, sharding, resume, progress."""

from clipdpo_cli.io.errors import BadRecord, InputError, RecordFailure
from clipdpo_cli.io.jsonl import JsonlWriter, read_jsonl
from clipdpo_cli.io.records import content_id, make_id, require
from clipdpo_cli.io.shard import Shard
from clipdpo_cli.io.stage import StageContext

__all__ = [
    "BadRecord",
    "InputError",
    "JsonlWriter",
    "RecordFailure",
    "Shard",
    "StageContext",
    "content_id",
    "make_id",
    "read_jsonl",
    "require",
]
