"""Runs a stage function between a record source and a JSONL sink: the CLI's one wiring of I/O."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import Interrupted, PipeClosed, RecordFailure, UsageError
from clipdpo_cli.io.images import list_images
from clipdpo_cli.io.jsonl import JsonlWriter, LineSource, done_ids, parse_lines
from clipdpo_cli.io.progress import Progress
from clipdpo_cli.io.shard import Shard, shard_key
from clipdpo_cli.io.stage import StageContext

StageFn = Callable[[Iterator[dict[str, Any]], StageContext], Iterator[dict[str, Any]]]


@dataclass
class IOOptions:
    """The options every stage command shares (see commands/options.py)."""

    input: str = "-"
    output: str | None = None
    quiet: bool = False
    on_error: str = "fail"
    shard: str | None = None
    resume: bool = False
    rejects: str | None = None


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def open_source(
    io: IOOptions, ctx: StageContext, schema: dict[str, str] | None, allow_folder: bool, counter: list[int]
) -> tuple[Iterator[dict[str, Any]], Any]:
    """Records from the input (a JSONL path, '-', or an image folder where allowed) and the line source.

    `counter[0]` counts the records read.
    """
    if allow_folder and io.input != "-" and os.path.isdir(io.input):
        return _counted(list_images(io.input), counter), None

    def on_bad_line(lineno: int, reason: str, message: str) -> None:
        if ctx.on_error == "fail":
            name = "stdin" if io.input == "-" else io.input
            raise RecordFailure(f"{name}: line {lineno}: {message} (use --on-error skip to skip such lines)")
        ctx.stats.skipped[reason] += 1

    source = LineSource(io.input)
    name = "stdin" if io.input == "-" else io.input
    return parse_lines(source.open(), on_bad_line, schema, counter, name), source


def _counted(records: Iterator[dict[str, Any]], counter: list[int]) -> Iterator[dict[str, Any]]:
    for record in records:
        counter[0] += 1
        yield record


def select(
    records: Iterator[dict[str, Any]], ctx: StageContext, shard: Shard, skip_done: bool
) -> Iterator[dict[str, Any]]:
    """Keep this shard's records and skip those already done (1:1 stages), counting what is left out."""
    if shard.is_whole and not (skip_done and ctx.done):
        return records
    return _selected(records, ctx, shard, skip_done)


def _selected(
    records: Iterator[dict[str, Any]], ctx: StageContext, shard: Shard, skip_done: bool
) -> Iterator[dict[str, Any]]:
    stats, done, whole = ctx.stats, ctx.done, shard.is_whole
    for record in records:
        if not whole and not shard.owns(shard_key(record)):
            stats.other_shards += 1
            continue
        if skip_done and record["id"] in done:
            stats.resumed += 1
            continue
        yield record


def run_stage(
    name: str,
    io: IOOptions,
    stage: StageFn,
    *,
    schema: dict[str, str] | None = None,
    one_to_one: bool = False,
    allow_folder: bool = False,
) -> StageContext:
    """Read, shard, resume, run `stage`, write, and print the summary line.

    `one_to_one`: output ids equal input ids, so --resume skips done inputs before the stage sees them.
    For other stages --resume still never writes an id twice; the stage may use ctx.done to skip work.
    """
    shard = Shard.parse(io.shard)
    if io.resume and not io.output:
        raise UsageError("--resume needs -o FILE (the ids already in FILE are skipped)")
    done = done_ids(io.output) if io.resume and io.output else set()
    writer = JsonlWriter(io.output, append=io.resume)
    rejects = JsonlWriter(io.rejects, append=io.resume) if io.rejects else None
    ctx = StageContext(name, io.on_error, rejects=rejects.write if rejects else None, log=log, done=done)
    counter = [0]
    source = None
    try:
        records, source = open_source(io, ctx, schema, allow_folder, counter)
        with Progress(name, enabled=not io.quiet, total_bytes=getattr(source, "total_bytes", None)) as bar:
            selected = select(bar.track(records, source), ctx, shard, skip_done=one_to_one)
            write = writer.write
            if done and not one_to_one:
                for record in stage(selected, ctx):
                    if record["id"] in done:
                        ctx.stats.resumed += 1
                    else:
                        write(record)
            else:
                writer.write_all(stage(selected, ctx))
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after {writer.count:,} records written") from None
    except BrokenPipeError:
        raise PipeClosed("output closed") from None
    finally:
        if source is not None:
            source.close()
        stats = ctx.stats
        stats.n_out = writer.count
        stats.n_in = counter[0] - stats.other_shards - (stats.resumed if one_to_one else 0)
        _close_quietly(writer, rejects)
    stats = ctx.stats
    if stats.n_in == 0 and not stats.skipped and not stats.resumed:
        log(f"clipdpo {name}: warning: the input held no records")
    if not io.quiet:
        log(stats.summary())
    return ctx


def _close_quietly(*writers: JsonlWriter | None) -> None:
    """Close outputs on whole lines; a reader that already went away is not an error."""
    for writer in writers:
        if writer is None:
            continue
        try:
            writer.close()
        except BrokenPipeError:
            pass
