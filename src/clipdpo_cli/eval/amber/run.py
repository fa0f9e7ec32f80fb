"""`eval-amber` end to end: export the queries, answer them (the respond stage, optional), score, report.

The CLI calls `run_eval`. With --model it is the one-command form of
`eval-amber --write-queries q.jsonl; respond q.jsonl -m MODEL -o r.jsonl; eval-amber --responses r.jsonl`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.eval.amber.data import AmberData, find_image_dir, load_amber
from clipdpo_cli.eval.amber.evaluate import format_table, score_responses
from clipdpo_cli.eval.amber.nlp import load_nouns
from clipdpo_cli.eval.amber.nlp.similarity import load_similarity
from clipdpo_cli.eval.amber.queries import DEFAULT_YES_NO_SUFFIX, query_records
from clipdpo_cli.eval.amber.responses import read_responses
from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.io.jsonl import JsonlWriter, write_json
from clipdpo_cli.io.log import say
from clipdpo_cli.io.outputs import check_outputs
from clipdpo_cli.io.progress import DEFAULT_EVERY
from clipdpo_cli.io.shard import Shard
from clipdpo_cli.models.generator import EngineSettings
from clipdpo_cli.stages.respond import RespondSettings


@dataclass
class AmberEvalSettings:
    amber_root: str
    task: str = "all"
    model: str | None = None
    responses: str | None = None
    responses_out: str | None = None
    write_queries: str | None = None  # write the task's queries for `clipdpo respond` here, then stop
    resume: bool = False
    shard: str | None = None
    generate_only: bool = False
    limit: int | None = None
    image_dir: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    chat_template: str | None = None
    max_pixels: int | None = None
    engine: EngineSettings = field(default_factory=EngineSettings)  # --engine and the server's options
    yes_no_suffix: str = DEFAULT_YES_NO_SUFFIX
    generation: RespondSettings = field(default_factory=lambda: RespondSettings(seed=0))
    nlp: str = "builtin"
    similarity_table: str | None = None
    similarity_threshold: float = 0.8
    normalize_answers: bool = False
    output: str | None = None
    quiet: bool = False
    allow_partial: bool = False  # incomplete responses are scored and exit 0 (also implied by --limit)
    progress_every: float = DEFAULT_EVERY


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


def _check(opts: AmberEvalSettings) -> None:
    written = [("-o", opts.output), ("--responses-out", opts.responses_out),
               ("--write-queries", opts.write_queries)]  # fmt: skip
    check_outputs(  # nor a file of the benchmark's folder (its query and annotation files)
        [(option, path) for option, path in written if path], [("--responses", opts.responses)],
        [("--amber-root", opts.amber_root)],
    )
    if opts.write_queries is not None:
        if opts.model or opts.responses:
            raise UsageError("--write-queries only writes the queries (no --model, no --responses)")
        return
    if (opts.model is None) == (opts.responses is None):
        raise UsageError("give exactly one of --model (generate responses) or --responses FILE (score them)")
    if opts.responses and (opts.responses_out or opts.resume or opts.shard or opts.generate_only):
        raise UsageError("--responses-out, --resume, --shard and --generate-only go with --model")
    if opts.resume and not opts.responses_out:
        raise UsageError("--resume needs --responses-out FILE (the ids already in FILE are skipped)")
    if not 0 <= opts.similarity_threshold <= 1:
        raise UsageError("--similarity-threshold must be between 0 and 1")


def _queries(opts: AmberEvalSettings, data: AmberData) -> list[dict[str, Any]]:
    image_dir = opts.image_dir or find_image_dir(opts.amber_root)
    return query_records(data, opts.task, image_dir, opts.yes_no_suffix, opts.limit)


def write_queries(opts: AmberEvalSettings, data: AmberData) -> None:
    """The exporter: the task's queries as respond records (JSONL) in --write-queries ('-': stdout)."""
    queries = _queries(opts, data)
    with JsonlWriter(opts.write_queries) as writer:
        writer.write_all(queries)
    if not opts.quiet:
        say(f"clipdpo eval-amber: {len(queries):,} queries written; answer them with "
            "`clipdpo respond FILE -m MODEL`, score the answers with --responses")  # fmt: skip


def _generate(opts: AmberEvalSettings, data: AmberData) -> list[dict[str, Any]]:
    """The respond stage over the task's queries, on the shared runner (shard, resume, progress, summary);
    returns every response of the task now in --responses-out (or a temporary file), so that a resumed run
    scores the earlier ones too."""
    from clipdpo_cli.eval.answer import ModelPass, answer_queries

    run = ModelPass(
        model=opts.model, device=opts.device, dtype=opts.dtype, chat_template=opts.chat_template,
        max_pixels=opts.max_pixels, generation=opts.generation, responses_out=opts.responses_out,
        resume=opts.resume, shard=opts.shard, quiet=opts.quiet, progress_every=opts.progress_every,
        engine=opts.engine,
    )  # fmt: skip
    queries = _queries(opts, data)
    return answer_queries("eval-amber", queries, run, lambda path: read_responses(path, opts.quiet))


def run_eval(opts: AmberEvalSettings) -> dict[str, Any] | None:
    """Generate and/or score; print the result JSON (stdout or --output) and the table (stderr)."""
    _check(opts)
    data = load_amber(opts.amber_root)
    if opts.write_queries is not None:
        write_queries(opts, data)
        return None
    sharded = not Shard.parse(opts.shard).is_whole
    scoring = not (opts.model and (opts.generate_only or sharded))
    if scoring:  # before generating: a missing NLP backend fails in seconds, not after hours
        nouns, similarity = load_nlp(opts.nlp, opts.similarity_table, opts.similarity_threshold, data)
    if opts.model:
        responses = _generate(opts, data)
        if not scoring:
            if sharded and not opts.quiet:
                say("clipdpo eval-amber: one shard's responses written; score them all together with "
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
        say(format_table(result))
        say(f"clipdpo eval-amber: scored in {scored_in:.2f} s")
    check_complete(result, opts)
    return result


def check_complete(result: dict[str, Any], opts: AmberEvalSettings) -> None:
    """Incomplete responses are an error (exit 1, after the metrics are written) unless --allow-partial
    or --limit (a subset asked for) accepts them."""
    if result.get("complete", True) or opts.allow_partial or opts.limit is not None:
        return
    counts = result["responses"]
    raise InputError(
        f"{counts['missing']:,} of the {counts['expected']:,} responses (task {result['task']}) are missing, "
        "so the figures cover a subset (--allow-partial to accept them)"
    )
