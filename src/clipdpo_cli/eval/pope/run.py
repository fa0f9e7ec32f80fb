"""`eval-pope` end to end: export the questions, answer them (the respond stage, optional), score, report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clipdpo_cli.eval.answer import ModelPass, answer_queries, check_pass_options
from clipdpo_cli.eval.pope.data import SPLITS, load_pope
from clipdpo_cli.eval.pope.evaluate import format_table, score_responses
from clipdpo_cli.eval.pope.queries import DEFAULT_POST_PROMPT, query_records
from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.jsonl import JsonlWriter, read_jsonl, write_json
from clipdpo_cli.io.log import say
from clipdpo_cli.io.outputs import check_outputs
from clipdpo_cli.io.shard import Shard


@dataclass
class PopeEvalSettings:
    pope_root: str
    image_root: str | None = None
    splits: tuple[str, ...] = SPLITS
    responses: str | None = None
    write_queries: str | None = None
    model_pass: ModelPass | None = None  # --model and its options
    post_prompt: str = DEFAULT_POST_PROMPT
    yes_no: str = "prob"  # how answers are read: p_yes/p_no (prob) or the official text rule (generate)
    limit: int | None = None
    generate_only: bool = False
    output: str | None = None
    allow_partial: bool = False
    quiet: bool = False


def run_eval(opts: PopeEvalSettings) -> dict[str, Any] | None:
    """Write the queries, or answer and/or score them; the result JSON to stdout or --output, the table to
    stderr."""
    run = opts.model_pass
    written = [("-o", opts.output), ("--write-queries", opts.write_queries),
               ("--responses-out", run and run.responses_out)]  # fmt: skip
    check_outputs(  # no output is a file the run reads: the responses or the benchmark's folder
        [(o, p) for o, p in written if p],
        [("--responses", opts.responses)],
        [("--pope-root", opts.pope_root)],
    )
    check_pass_options(
        run and run.model,
        opts.responses,
        run and run.responses_out,
        bool(run and run.resume),
        run and run.shard,
        opts.write_queries,
    )
    questions = load_pope(opts.pope_root, opts.splits)
    if opts.write_queries is not None:
        queries = query_records(questions, opts.image_root, opts.post_prompt, opts.limit)
        with JsonlWriter(opts.write_queries) as writer:
            writer.write_all(queries)
        if not opts.quiet:
            say(
                f"clipdpo eval-pope: {len(queries):,} queries written; answer them with `clipdpo respond "
                "FILE -m MODEL`, score the answers with --responses"
            )
        return None
    if run is not None:
        queries = query_records(questions, opts.image_root, opts.post_prompt, opts.limit)
        responses = answer_queries("eval-pope", queries, run)
        if opts.generate_only or not Shard.parse(run.shard).is_whole:
            if not opts.quiet and not Shard.parse(run.shard).is_whole:
                say(
                    "clipdpo eval-pope: one shard's responses written; score them all together with "
                    "--responses (concatenate the shards' files)"
                )
            return None
    else:
        responses = read_jsonl(opts.responses)
    result = score_responses(questions, responses, opts.yes_no, opts.limit)
    if run is not None:
        result.update(model=run.model, post_prompt=opts.post_prompt)
    write_json(result, opts.output)
    if not opts.quiet:
        say(format_table(result))
    if not (result["complete"] or opts.allow_partial or opts.limit is not None):
        counts = result["responses"]
        raise InputError(
            f"{counts['missing']:,} of the {counts['expected']:,} POPE questions have no response, "
            "so the figures cover a subset (--allow-partial to accept them)"
        )
    return result
