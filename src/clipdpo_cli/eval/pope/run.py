"""`eval-pope` end to end: export the questions, answer them (the respond stage, optional), score, report.

PopeEvalSettings' fields are also the command's options (io.setting; the shared ones are declared in
commands/eval_options.py); no `from __future__ import annotations` here, so their types are the options'.
"""

import enum
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.eval.answer import (
    AnswerGeneration,
    answer_queries,
    answered_only,
    model_pass,
    value_of,
    write_query_file,
)
from clipdpo_cli.eval.pope.data import SPLITS, load_pope
from clipdpo_cli.eval.pope.evaluate import format_table, score_responses
from clipdpo_cli.eval.pope.queries import DEFAULT_POST_PROMPT, query_records
from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.jsonl import read_jsonl, write_json
from clipdpo_cli.io.log import say
from clipdpo_cli.io.outputs import check_outputs
from clipdpo_cli.io.progress import DEFAULT_EVERY
from clipdpo_cli.io.setting import setting
from clipdpo_cli.stages.respond import RespondSettings


class Split(str, enum.Enum):
    all = "all"
    random = "random"
    popular = "popular"
    adversarial = "adversarial"


@dataclass
class PopeEvalSettings(AnswerGeneration):
    """eval-pope's options (each field a `clipdpo eval-pope` option), and the generation engine's."""

    pope_root: str = setting(
        help="Folder of the official question files coco_pope_random.json, coco_pope_popular.json and "
        "coco_pope_adversarial.json (AoiDragon/POPE output/coco/)."
    )
    image_root: str | None = setting(None, shared=True)  # COCO val2014, joined to the files' image names
    responses: str | None = setting(None, shared=True)
    split: str = setting("all", "Which question set(s) to answer and score.", cli_type=Split, parse=value_of)
    write_queries: str | None = setting(None, shared=True)
    post_prompt: str = setting(
        DEFAULT_POST_PROMPT, "Appended to each question (default: lmms-eval's POPE post-prompt)."
    )
    # how answers are given and read: p_yes/p_no (prob) or the official text rule (generate)
    yes_no: str = setting("prob", shared=True, parse=value_of)
    responses_out: str | None = setting(None, shared=True)
    resume: bool = setting(False, shared=True)
    shard: str | None = setting(None, shared=True)
    generate_only: bool = setting(False, shared=True)
    limit: int | None = setting(None, shared=True)
    output: str | None = setting(None, shared=True)
    allow_partial: bool = setting(False, shared=True)
    quiet: bool = setting(False, shared=True)
    progress_every: float = setting(DEFAULT_EVERY, shared=True)
    # the generation group's fields come from AnswerGeneration; POPE's own default (its command leaves out
    # --temperature, --top-p and --seed: its answers are greedy)
    max_new_tokens: int = field(default=16, kw_only=True)  # a free answer's (--yes-no generate)

    @property
    def splits(self) -> tuple[str, ...]:
        return SPLITS if self.split == "all" else (self.split,)

    def generation(self) -> RespondSettings:
        """The respond stage's settings of the --model pass: greedy, as lmms-eval's POPE task."""
        return RespondSettings(yes_no=self.yes_no, yes_no_max_new_tokens=self.max_new_tokens, temperature=0.0,
                               batch_size=self.batch_size, seed=0)  # fmt: skip


def run_eval(opts: PopeEvalSettings) -> dict[str, Any] | None:
    """Write the queries, or answer and/or score them; the result JSON to stdout or --output, the table to
    stderr."""
    run = model_pass(opts, opts.generation())
    written = [("-o", opts.output), ("--write-queries", opts.write_queries),
               ("--responses-out", run and run.responses_out)]  # fmt: skip
    check_outputs(  # no output is a file the run reads: the responses or the benchmark's folder
        [(o, p) for o, p in written if p],
        [("--responses", opts.responses)],
        [("--pope-root", opts.pope_root)],
    )
    questions = load_pope(opts.pope_root, opts.splits)
    if opts.write_queries is not None:
        queries = query_records(questions, opts.image_root, opts.post_prompt, opts.limit)
        write_query_file("eval-pope", opts.write_queries, queries, opts.quiet)
        return None
    if run is not None:
        queries = query_records(questions, opts.image_root, opts.post_prompt, opts.limit)
        responses = answer_queries("eval-pope", queries, run)
        if answered_only("eval-pope", run, opts.generate_only, opts.quiet):
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
