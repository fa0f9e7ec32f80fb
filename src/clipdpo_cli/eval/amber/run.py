"""`eval-amber` end to end: export the queries, answer them (the respond stage, optional), score, report.

The CLI calls `run_eval`. With --model it is the one-command form of
`eval-amber --write-queries q.jsonl; respond q.jsonl -m MODEL -o r.jsonl; eval-amber --responses r.jsonl`.
AmberEvalSettings' fields are also the command's options (io.setting; the shared ones are declared in
commands/eval_options.py); no `from __future__ import annotations` here, so their types are the options'.
"""

import enum
import time
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.eval.amber.data import AmberData, find_image_dir, load_amber
from clipdpo_cli.eval.amber.evaluate import format_table, score_responses
from clipdpo_cli.eval.amber.nlp import load_nouns
from clipdpo_cli.eval.amber.nlp.similarity import load_similarity
from clipdpo_cli.eval.amber.queries import DEFAULT_YES_NO_SUFFIX, query_records
from clipdpo_cli.eval.amber.responses import read_responses
from clipdpo_cli.eval.answer import (
    AnswerGeneration,
    ModelPass,
    answer_queries,
    answered_only,
    model_pass,
    value_of,
    write_query_file,
)
from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.io.jsonl import write_json
from clipdpo_cli.io.log import say
from clipdpo_cli.io.outputs import check_outputs
from clipdpo_cli.io.progress import DEFAULT_EVERY
from clipdpo_cli.io.setting import setting
from clipdpo_cli.io.shard import Shard
from clipdpo_cli.stages.respond import RespondSettings


class Task(str, enum.Enum):
    all = "all"
    generative = "generative"
    discriminative = "discriminative"
    existence = "existence"
    attribute = "attribute"
    relation = "relation"


class Nlp(str, enum.Enum):
    builtin = "builtin"
    official = "official"


@dataclass
class AmberEvalSettings(AnswerGeneration):
    """eval-amber's options (each field a `clipdpo eval-amber` option), and the generation engine's."""

    amber_root: str = setting(
        help="The AMBER folder: data/annotations.json, relation.json, safe_words.txt, query/, and "
        "image/AMBER_N.jpg (see docs/amber.md)."
    )
    responses: str | None = setting(None, shared=True)
    task: str = setting(
        "all", "Which queries to answer and figures to report.", cli_type=Task, parse=value_of
    )
    responses_out: str | None = setting(None, shared=True)
    resume: bool = setting(False, shared=True)
    shard: str | None = setting(None, shared=True)
    generate_only: bool = setting(False, shared=True)
    write_queries: str | None = setting(None, shared=True)  # for `clipdpo respond`, then stop
    yes_no: str = setting("prob", shared=True, parse=value_of)
    yes_no_suffix: str = setting(DEFAULT_YES_NO_SUFFIX, "Appended to each yes/no query.")
    limit: int | None = setting(None, shared=True)
    amber_images: str | None = setting(
        None, "AMBER's images folder, if not AMBER_ROOT/image.", show_default=False, aliases=("--image-dir",)
    )
    nlp: str = setting(
        "builtin", "Noun extraction and similarity: builtin (no downloads) or official (NLTK + spaCy "
        "en_core_web_lg, as the benchmark's scorer).", cli_type=Nlp, parse=value_of,
    )  # fmt: skip
    similarity_table: str | None = setting(
        None, "Precomputed word-similarity table (from --build-similarity-table).", show_default=False
    )
    similarity_threshold: float = setting(0.8, "A word is similar above this.")
    build_similarity_table: str | None = setting(
        None, "Write the similarity table of the benchmark's vocabulary from spaCy en_core_web_lg to this "
        "file, then exit.", show_default=False,
    )  # fmt: skip
    normalize_answers: bool = setting(
        False, "Map answers such as 'yes.', 'Yes, there is' to Yes/No before scoring (off: the official "
        "scorer counts only exact 'Yes'/'No').",
    )  # fmt: skip
    output: str | None = setting(None, shared=True)
    # incomplete responses are scored and exit 0 (also implied by --limit)
    allow_partial: bool = setting(False, shared=True)
    quiet: bool = setting(False, shared=True)
    progress_every: float = setting(DEFAULT_EVERY, shared=True)

    def generation(self) -> RespondSettings:
        """The respond stage's settings of the --model pass."""
        return RespondSettings(yes_no=self.yes_no, max_new_tokens=self.max_new_tokens,
                               temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                               batch_size=self.batch_size)  # fmt: skip


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


def _check(opts: AmberEvalSettings) -> ModelPass | None:
    """The usage rules (eval/answer.py model_pass) and the outputs; the --model pass, if any."""
    run = model_pass(opts, opts.generation())
    written = [("-o", opts.output), ("--responses-out", opts.responses_out),
               ("--write-queries", opts.write_queries)]  # fmt: skip
    check_outputs(  # nor a file of the benchmark's folder (its query and annotation files)
        [(option, path) for option, path in written if path], [("--responses", opts.responses)],
        [("--amber-root", opts.amber_root)],
    )  # fmt: skip
    if not 0 <= opts.similarity_threshold <= 1:
        raise UsageError("--similarity-threshold must be between 0 and 1")
    return run


def _queries(opts: AmberEvalSettings, data: AmberData) -> list[dict[str, Any]]:
    image_dir = opts.amber_images or find_image_dir(opts.amber_root)
    return query_records(data, opts.task, image_dir, opts.yes_no_suffix, opts.limit)


def run_eval(opts: AmberEvalSettings) -> dict[str, Any] | None:
    """Generate and/or score; print the result JSON (stdout or --output) and the table (stderr).

    With --model, the respond stage answers the task's queries on the shared runner (eval/answer.py: shard,
    resume, progress, summary), and every response of the task now in --responses-out is scored, so that a
    resumed run scores the earlier ones too."""
    if opts.build_similarity_table:
        from clipdpo_cli.eval.amber.table import build_similarity_file

        build_similarity_file(opts.amber_root, opts.build_similarity_table, quiet=opts.quiet)
        return None
    run = _check(opts)
    data = load_amber(opts.amber_root)
    if opts.write_queries is not None:
        write_query_file("eval-amber", opts.write_queries, _queries(opts, data), opts.quiet)
        return None
    if run is None or not (opts.generate_only or not Shard.parse(run.shard).is_whole):
        # scored: the NLP backend loads before generating (a missing one fails in seconds, not after hours)
        nouns, similarity = load_nlp(opts.nlp, opts.similarity_table, opts.similarity_threshold, data)
    if run is not None:
        read = lambda path: read_responses(path, opts.quiet)  # noqa: E731
        responses = answer_queries("eval-amber", _queries(opts, data), run, read)
        if answered_only("eval-amber", run, opts.generate_only, opts.quiet):
            return None
    else:
        responses = read_responses(opts.responses, opts.quiet)
    started = time.perf_counter()
    result = score_responses(data, responses, opts.task, nouns, similarity, opts.normalize_answers)
    if run is not None:
        result["model"] = opts.model
        result["yes_no"] = opts.yes_no
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
