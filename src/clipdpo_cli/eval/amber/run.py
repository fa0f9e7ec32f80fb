"""`eval-amber` end to end: generate responses (optional), score them, report. The CLI calls `run_eval`."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.eval.amber.data import AmberData, find_image_dir, load_amber
from clipdpo_cli.eval.amber.evaluate import format_table, score_responses
from clipdpo_cli.eval.amber.generate import GenerationSettings, done_response_ids, generate_responses
from clipdpo_cli.eval.amber.nlp import load_nouns
from clipdpo_cli.eval.amber.nlp.similarity import load_similarity
from clipdpo_cli.eval.amber.responses import read_responses
from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.io.jsonl import JsonlWriter, write_json
from clipdpo_cli.io.progress import DEFAULT_EVERY, Progress
from clipdpo_cli.io.shard import Shard


@dataclass
class EvalOptions:
    amber_root: str
    task: str = "all"
    model: str | None = None
    responses: str | None = None
    responses_out: str | None = None
    resume: bool = False
    shard: str | None = None
    generate_only: bool = False
    limit: int | None = None
    image_dir: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    chat_template: str | None = None
    max_pixels: int | None = None
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    nlp: str = "builtin"
    similarity_table: str | None = None
    similarity_threshold: float = 0.8
    normalize_answers: bool = False
    output: str | None = None
    quiet: bool = False
    allow_partial: bool = False  # incomplete responses are scored and exit 0 (also implied by --limit)
    progress_every: float = DEFAULT_EVERY


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_nlp(backend: str, table: str | None, threshold: float, data: AmberData) -> tuple[Any, Any]:
    """Noun extractor and similarity; for `official`, one error naming everything that is missing."""
    problems: list[str] = []
    nouns = similarity = None
    try:
        nouns = load_nouns(backend, data.vocabulary_set)
    except InputError as exc:
        problems.append(str(exc))
    try:
        similarity = load_similarity(backend, table, threshold)
    except InputError as exc:
        problems.append(str(exc))
    if problems:
        raise InputError("; ".join(problems))
    return nouns, similarity


def _check(opts: EvalOptions) -> None:
    if (opts.model is None) == (opts.responses is None):
        raise UsageError("give exactly one of --model (generate responses) or --responses FILE (score them)")
    if opts.responses and (opts.responses_out or opts.resume or opts.shard or opts.generate_only):
        raise UsageError("--responses-out, --resume, --shard and --generate-only go with --model")
    if opts.resume and not opts.responses_out:
        raise UsageError("--resume needs --responses-out FILE (the ids already in FILE are skipped)")
    if not 0 <= opts.similarity_threshold <= 1:
        raise UsageError("--similarity-threshold must be between 0 and 1")


def _generate(opts: EvalOptions, data: AmberData) -> list[dict[str, Any]]:
    """Generate the task's responses; returns every response of the task now in --responses-out (or in
    memory), so that a resumed run scores the earlier ones too."""
    from clipdpo_cli.models.lvlm import load_lvlm

    queries = data.queries(opts.task)
    if opts.limit is not None:
        queries = _limited(queries, data, opts.limit)
    shard = Shard.parse(opts.shard)
    done = done_response_ids(opts.responses_out) if opts.resume else set()
    image_dir = opts.image_dir or find_image_dir(opts.amber_root)
    started = time.perf_counter()
    lvlm = load_lvlm(
        opts.model, device=opts.device, dtype=opts.dtype, chat_template=opts.chat_template,
        max_pixels=opts.max_pixels,
    )  # fmt: skip
    memory: list[dict[str, Any]] = []
    writer = JsonlWriter(opts.responses_out, append=opts.resume) if opts.responses_out else None
    todo = sum(1 for q in queries if q["id"] not in done and shard.owns(q["image"]))
    bar = Progress("eval-amber", unit="responses", total=todo, quiet=opts.quiet, every=opts.progress_every)

    def on_batch(n: int) -> None:
        if writer:
            writer.flush()
        bar.update(advance=n)

    try:
        with bar:
            written = generate_responses(
                lvlm, data, queries, image_dir, opts.generation,
                write=writer.write if writer else memory.append, done=done, shard=shard, on_batch=on_batch,
            )  # fmt: skip
    finally:
        if writer:
            writer.close()
    if not opts.quiet:
        seconds = time.perf_counter() - started
        skipped = f", {len(done):,} already done (resume)" if done else ""
        log(f"clipdpo eval-amber: {written:,} responses generated{skipped}; {seconds:.1f} s")
    if writer is None:
        return memory
    wanted = {q["id"] for q in queries}
    return [r for r in read_responses(opts.responses_out, opts.quiet) if r["id"] in wanted]


def _limited(queries: list[dict[str, Any]], data: AmberData, limit: int) -> list[dict[str, Any]]:
    """The first `limit` queries of each task part (generative, existence, attribute, relation)."""
    from clipdpo_cli.eval.amber.data import task_of

    taken: dict[str, int] = {}
    out = []
    for query in queries:
        part = task_of(data.annotations[query["id"]]["type"])
        if taken.get(part, 0) < limit:
            taken[part] = taken.get(part, 0) + 1
            out.append(query)
    return out


def run_eval(opts: EvalOptions) -> dict[str, Any] | None:
    """Generate and/or score; print the result JSON (stdout or --output) and the table (stderr)."""
    _check(opts)
    data = load_amber(opts.amber_root)
    sharded = not Shard.parse(opts.shard).is_whole
    scoring = not (opts.model and (opts.generate_only or sharded))
    if scoring:  # before generating: a missing NLP backend fails in seconds, not after hours
        nouns, similarity = load_nlp(opts.nlp, opts.similarity_table, opts.similarity_threshold, data)
    if opts.model:
        responses = _generate(opts, data)
        if not scoring:
            if sharded and not opts.quiet:
                log("clipdpo eval-amber: one shard's responses written; score them all together with "
                    "--responses (concatenate the shards' files)")
            return None
    else:
        responses = read_responses(opts.responses, opts.quiet)
    started = time.perf_counter()
    result = score_responses(data, responses, opts.task, nouns, similarity, opts.normalize_answers)
    if opts.model:
        result["model"] = opts.model
        result["yes_no"] = opts.generation.yes_no
    scored_in = time.perf_counter() - started
    write_json(result, opts.output)
    if not opts.quiet:
        log(format_table(result))
        log(f"clipdpo eval-amber: scored in {scored_in:.2f} s")
    check_complete(result, opts)
    return result


def check_complete(result: dict[str, Any], opts: EvalOptions) -> None:
    """Incomplete responses are an error (exit 1, after the metrics are written) unless --allow-partial
    or --limit (a subset asked for) accepts them."""
    if result.get("complete", True) or opts.allow_partial or opts.limit is not None:
        return
    counts = result["responses"]
    raise InputError(
        f"{counts['missing']:,} of the {counts['expected']:,} responses (task {result['task']}) are missing, "
        "so the figures cover a subset (--allow-partial to accept them)"
    )
