"""Runs a stage function between a record source and a JSONL sink: the CLI's one wiring of I/O."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import is_
from typing import Any

from orjson import dumps

from clipdpo_cli.io.errors import InputError, Interrupted, PipeClosed, RecordFailure, UsageError
from clipdpo_cli.io.images import count_images
from clipdpo_cli.io.jsonl import (
    BadLineHandler,
    JsonlWriter,
    LineSource,
    decode_batch,
    existing_records,
    read_batches,
)
from clipdpo_cli.io.log import info, say, warning
from clipdpo_cli.io.outputs import check_outputs
from clipdpo_cli.io.progress import DEFAULT_EVERY, Progress, ProgressState
from clipdpo_cli.io.records import id_key, record_key
from clipdpo_cli.io.shard import Shard, shard_key
from clipdpo_cli.io.sources import InputSettings, InputSource, check_input, line_source, open_input
from clipdpo_cli.io.stage import SKIPPED, BatchSelector, StageContext

StageFn = Callable[[Iterator[dict[str, Any]], StageContext], Iterator[dict[str, Any]]]


@dataclass
class IOSettings:
    """The options every stage command shares (see commands/options.py)."""

    input: str = "-"
    output: str | None = None
    quiet: bool = False
    on_error: str = "fail"
    shard: str | None = None
    resume: bool = False
    rejects: str | None = None
    progress_every: float = DEFAULT_EVERY  # seconds between plain progress lines off a terminal (0: none)
    source: InputSettings = field(default_factory=InputSettings)  # --input-format and co. (io/sources/)
    lines_only: str | None = None  # a stage that reads only JSON lines: its name (filter writes back lines)
    side_inputs: tuple[tuple[str, str], ...] = ()  # (option, path) of the command's other input files


def check_io(io: IOSettings, extra_outputs: tuple[tuple[str, str], ...] = ()) -> None:
    """Fail on a missing input, an output into a missing folder or onto an input (io/outputs.py; also
    `extra_outputs`, a command's other files) or a --resume without -o; stage commands call it before
    loading a model, and the runner again before it opens an output."""
    check_input(io.input, io.source, allow_folder=True, output=io.output, lines_only=io.lines_only)
    outputs = [("-o", io.output), *((("--rejects", io.rejects),) if io.rejects else ()), *extra_outputs]
    check_outputs(outputs, [("", io.input), *io.side_inputs])
    if io.resume and not io.output:
        raise UsageError("--resume needs -o FILE (the ids already in FILE are skipped)")
    for option, path in (("-o", io.output), ("--rejects", io.rejects)):
        folder = os.path.dirname(os.path.abspath(path)) if path and path != "-" else ""
        if folder and not os.path.isdir(folder):
            raise InputError(f"{option} {path}: folder {folder} does not exist")


def open_source(io: IOSettings, ctx: StageContext, allow_folder: bool, counter: list[int]) -> InputSource:
    """The input in any format io/sources.py reads (an image folder only where allowed); `counter[0]`
    counts the records read."""
    return open_input(io.input, io.source, ctx, bad_line_handler(io, ctx), counter, allow_folder, io.output)


def stage_progress(
    name: str,
    io: IOSettings,
    source: InputSource | LineSource,
    counter: list[int],
    allow_folder: bool = False,
    total: int | None = None,
    unit: str = "records",
) -> Progress:
    """The progress display of a record stage: the records read (`counter[0]`); an image folder is counted
    first (the bar has a total), a file's progress is the bytes read of its size, unless the caller knows
    the `total` (the records in the input).

    The display reads the counter and the file position on its own schedule: no work per record.
    """

    def poll(state: ProgressState) -> None:
        state.done = counter[0]
        if source.total_bytes:
            state.bytes_read = source.bytes_read

    bar = Progress(
        name, unit=unit, total=total, total_bytes=source.total_bytes, quiet=io.quiet, every=io.progress_every,
        poll=poll,
    )  # fmt: skip
    if total is None and allow_folder and bar.enabled and io.input != "-" and os.path.isdir(io.input):
        bar.state.total = count_images(io.input)
    return bar


def input_name(io: IOSettings) -> str:
    return "stdin" if io.input == "-" else io.input


def bad_line_handler(io: IOSettings, ctx: StageContext) -> BadLineHandler:
    """Stops the run on an unusable input line (--on-error fail) or counts it as skipped."""

    def on_bad_line(lineno: int, reason: str, message: str) -> None:
        if ctx.on_error == "fail":
            raise RecordFailure(
                f"{input_name(io)}: line {lineno}: {message} (use --on-error skip to skip such lines)"
            )
        ctx.stats.skipped[reason] += 1

    return on_bad_line


def select(
    records: Iterator[dict[str, Any]], ctx: StageContext, shard: Shard, skip_done: bool
) -> Iterator[dict[str, Any]]:
    """Keep this shard's records and skip those already done (1:1 stages), counting what is left out."""
    if shard.is_whole and not (skip_done and ctx.done):
        return records
    wanted = _wanted_by(ctx, shard, skip_done)
    return (record for record in records if wanted(record))


def _wanted_by(ctx: StageContext, shard: Shard, skip_done: bool) -> Callable[[dict[str, Any]], bool]:
    """record -> whether it is this shard's and not already done; counts those left out."""
    stats, done = ctx.stats, ctx.done if skip_done else frozenset()

    def wanted(record: dict[str, Any]) -> bool:
        if not shard.owns(shard_key(record)):
            stats.other_shards += 1
            return False
        rid = record["id"]
        if (rid if rid.__class__ is str else id_key(rid)) in done:
            stats.resumed += 1
            return False
        return True

    return wanted


def resume_keys(io: IOSettings) -> tuple[set[Any], set[Any]]:
    """Under --resume, (done, rejected): the id keys already written (to -o or to --rejects) and the keys
    of the records in the rejects file; both files are first cut back to their last whole line.

    One rule for both files: a record in either is done, so it is neither judged nor written again. Ids
    compare by io.records.id_key (JSON value and type), so integer ids resume like string ids.
    """
    if not (io.resume and io.output):
        return set(), set()
    done = {id_key(r["id"]) for r in _written(io.output, "-o") if "id" in r}
    rejected = {record_key(r) for r in _written(io.rejects, "--rejects")} if io.rejects else set()
    done.update(key for key in rejected if key.__class__ is not tuple)  # tuples: rejects without an id
    return done, rejected


def _written(path: str, option: str) -> Iterator[dict[str, Any]]:
    """The records an earlier run wrote to `path` (none when it does not exist yet), repaired first."""
    if path.endswith(".gz"):
        raise UsageError(
            f"--resume needs an uncompressed {option} file (a killed .gz stream cannot be appended)"
        )
    if path == "-" or not os.path.exists(path):
        return iter(())
    return existing_records(path)


@dataclass
class _Run:
    """What one stage run holds open: its context, output, shard, input and record count."""

    ctx: StageContext
    writer: JsonlWriter
    shard: Shard
    counter: list[int] = field(default_factory=lambda: [0])
    source: Any = None  # an io.sources.InputSource or io.jsonl.LineSource: close() on the way out


@contextmanager
def _running(name: str, io: IOSettings, one_to_one: bool) -> Iterator[_Run]:
    """Open the outputs, and on the way out close everything on whole lines and print the summary."""
    check_io(io)
    shard = Shard.parse(io.shard)
    done, rejected = resume_keys(io)
    writer = JsonlWriter(io.output, append=io.resume)
    rejects = JsonlWriter(io.rejects, append=io.resume) if io.rejects else None
    ctx = StageContext(
        name, io.on_error, rejects=rejects.write if rejects else None, log=say, done=done, rejected=rejected
    )
    run = _Run(ctx, writer, shard)
    implicit_shard(name, shard, ctx)
    finished = False
    try:
        yield run
        finished = True
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after {writer.count:,} records written") from None
    except BrokenPipeError:
        raise PipeClosed("output closed") from None
    finally:
        if run.source is not None:
            run.source.close()
        stats = ctx.stats
        stats.n_out = writer.count
        stats.n_in = run.counter[0] - stats.other_shards - (stats.resumed if one_to_one else 0)
        _close_quietly(writer, rejects, failed=not finished)
    stats = ctx.stats
    if shard.origin:
        stats.notes.append(f"{shard.describe()}: {stats.other_shards:,} records left to the other shards")
    if stats.n_in == 0 and not stats.skipped and not stats.resumed:
        warning(name, "the input held no records")
    say(stats.summary(), io.quiet)


def implicit_shard(name: str, shard: Shard, ctx: StageContext) -> None:
    """A shard taken from SLURM's array variables (no --shard) is said on stderr and in the summary."""
    if shard.origin:
        info(name, f"processing only {shard.describe()} (pass --shard 0/1 for the whole input)")


def run_stage(
    name: str,
    io: IOSettings,
    stage: StageFn,
    *,
    one_to_one: bool = False,
    allow_folder: bool = False,
    total: int | None = None,
    unit: str = "records",
) -> StageContext:
    """Read, shard, resume, run `stage`, write, and print the summary line.

    `total` and `unit`: what the progress display counts, when the caller knows the input's size.

    --resume (see resume_keys): ctx.done holds the ids already in -o or in --rejects. `one_to_one`:
    output ids equal input ids, so done inputs are skipped before the stage sees them (a rejected record
    is not judged again). For other stages the runner still never writes a done id, to -o or (through
    ctx.drop / ctx.reject) to --rejects; the stage may use ctx.done to skip work.
    """
    with _running(name, io, one_to_one) as run:
        ctx, writer = run.ctx, run.writer
        run.source = source = open_source(io, ctx, allow_folder, run.counter)
        with stage_progress(name, io, source, run.counter, allow_folder, total, unit):
            selected = select(source.records, ctx, run.shard, skip_done=one_to_one)
            selected = source.prepare(selected, ctx)  # images that came as bytes: written for this shard
            if ctx.done and not one_to_one:
                write, done = writer.write, ctx.done
                for record in stage(selected, ctx):
                    rid = record["id"]
                    if (rid if rid.__class__ is str else id_key(rid)) in done:
                        ctx.stats.resumed += 1
                    else:
                        write(record)
            else:
                writer.write_all(stage(selected, ctx))
    return ctx


def run_selection(name: str, io: IOSettings, select_batch: BatchSelector) -> StageContext:
    """Run a stage that only keeps or drops records, batch by batch.

    Kept records are written back as the very lines they were read from (a record that came without an
    id is written with the id it was given), so no record is re-serialised. Sharding, --resume,
    --rejects and --on-error behave as in run_stage.
    """
    with _running(name, io, one_to_one=True) as run:
        ctx, writer, shard, counter = run.ctx, run.writer, run.shard, run.counter
        run.source = source = line_source(io.input, io.source, name)
        on_bad_line, dropped = bad_line_handler(io, ctx), ctx.stats.dropped
        with stage_progress(name, io, source, counter):
            cap = io.source.max_record_size
            for batch in read_batches(source.open(), max_line=cap, on_bad_line=on_bad_line):
                records, lines = decode_batch(batch, on_bad_line)
                counter[0] += len(records)
                if not shard.is_whole or ctx.done:
                    records, lines = _selected_lines(records, lines, ctx, shard)
                reasons = select_batch(records, lines, batch.plain and lines is batch.lines, ctx)
                keep = list(map(is_, reasons, repeat(None)))
                kept = list(compress(lines, keep))
                if lines is not batch.lines and None in kept:  # records given an id here
                    kept = [line or dumps(r) for line, r in compress(zip(lines, records, strict=True), keep)]
                writer.write_lines(kept)
                if len(kept) < len(records):
                    counts = Counter(reasons)
                    counts.pop(None, None)
                    counts.pop(SKIPPED, None)
                    dropped.update(counts)
                    if ctx.has_rejects:
                        for record, reason in zip(records, reasons, strict=True):
                            if reason is not None and reason is not SKIPPED:
                                ctx.reject(record, reason)
    return ctx


def _selected_lines(
    records: list[dict[str, Any]], lines: list[bytes | None], ctx: StageContext, shard: Shard
) -> tuple[list[dict[str, Any]], list[bytes | None]]:
    """`select` for a batch: this shard's records not already done, with their lines."""
    keep = list(map(_wanted_by(ctx, shard, skip_done=True), records))
    return list(compress(records, keep)), list(compress(lines, keep))


def _close_quietly(*writers: JsonlWriter | None, failed: bool = False) -> None:
    """Close outputs on whole lines (a failed run leaves an output it never wrote to as it was); a reader
    that already went away is not an error."""
    for writer in writers:
        if writer is None:
            continue
        try:
            writer.close(failed=failed)
        except BrokenPipeError:
            pass
