"""The in-process respond pass of every benchmark command's `--model` (eval-amber, eval-pope, eval-chair,
eval-zeroshot's captions): the benchmark's queries written to a temporary file and answered by the respond
stage on the shared runner (--shard, --resume, --on-error, progress and the summary come from io/runner.py).

`clipdpo eval-X --model M -r r.jsonl` is therefore `eval-X --write-queries q.jsonl; respond q.jsonl -m M
-o r.jsonl; eval-X --responses r.jsonl` in one command.
"""

import enum
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.io.jsonl import JsonlWriter, read_jsonl
from clipdpo_cli.io.log import say
from clipdpo_cli.io.progress import DEFAULT_EVERY
from clipdpo_cli.io.shard import Shard
from clipdpo_cli.models.generator import EngineSettings
from clipdpo_cli.stages.respond import RespondSettings

if TYPE_CHECKING:
    from clipdpo_cli.models.generator import ImageTextGenerator


def value_of(choice: Any) -> Any:
    """An enum option's value (the command line gives the enum member, a Python caller the string)."""
    return choice.value if isinstance(choice, enum.Enum) else choice


@dataclass(kw_only=True)
class AnswerGeneration:
    """The generation group's fields a benchmark's settings carry, with the benchmarks' defaults (greedy,
    seed 0, 8 rows a batch): a benchmark's settings dataclass inherits them and overrides a default where its
    answers differ (POPE's short ones); `generation_options` reads the defaults from there, and a field the
    command does not take is left out of its options (`benchmark_command(..., without=...)`). Keyword-only,
    so a benchmark's own required fields (AMBER's amber_root) may follow them."""

    model: str | None = None
    max_new_tokens: int = 512  # a description's
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 8
    device: str = "auto"
    dtype: str = "auto"
    chat_template: str | None = None
    max_pixels: int | None = None
    engine: EngineSettings = field(default_factory=EngineSettings)  # --engine and the server's options


@dataclass
class ModelPass:
    """What answering with --model needs: the LVLM and its loading, the stage's and the runner's settings."""

    model: str
    device: str = "auto"
    dtype: str = "auto"
    chat_template: str | None = None
    max_pixels: int | None = None
    generation: RespondSettings = field(default_factory=lambda: RespondSettings(seed=0))
    responses_out: str | None = None
    resume: bool = False
    shard: str | None = None
    on_error: str = "fail"
    quiet: bool = False
    progress_every: float = DEFAULT_EVERY
    engine: EngineSettings = field(default_factory=EngineSettings)  # --engine hf (in-process) or openai

    def load(self) -> "ImageTextGenerator":
        """The LVLM, in-process or a client of its server (models.generator)."""
        from clipdpo_cli.models.generator import open_image_text_generator

        return open_image_text_generator(
            self.model, self.engine, self.device, self.dtype, self.chat_template, self.max_pixels
        )


def model_pass(opts: Any, generation: RespondSettings) -> ModelPass | None:
    """The --model pass of a benchmark's settings, after the benchmarks' usage rules: --write-queries alone,
    else one of --model / --responses; --responses-out, --resume, --shard, --generate-only with --model;
    --resume with --responses-out. None without --model.

    `opts` names the pass's options alike in every benchmark: model, responses, write_queries, device,
    dtype, chat_template, max_pixels, engine, responses_out, resume, shard, generate_only, quiet,
    progress_every."""
    if opts.model is None and (opts.responses_out or opts.resume or opts.shard or opts.generate_only):
        raise UsageError("--responses-out, --resume, --shard and --generate-only go with --model")
    if opts.write_queries is not None:
        if opts.model or opts.responses:
            raise UsageError("--write-queries only writes the queries (no --model, no --responses)")
        return None
    if (opts.model is None) == (opts.responses is None):
        raise UsageError("give exactly one of --model (generate responses) or --responses FILE (score them)")
    if opts.resume and not opts.responses_out:
        raise UsageError("--resume needs --responses-out FILE (the ids already in FILE are skipped)")
    if opts.model is None:
        return None
    return ModelPass(
        model=opts.model, device=opts.device, dtype=opts.dtype, chat_template=opts.chat_template,
        max_pixels=opts.max_pixels, generation=generation, responses_out=opts.responses_out,
        resume=opts.resume, shard=opts.shard, quiet=opts.quiet, progress_every=opts.progress_every,
        engine=opts.engine,
    )  # fmt: skip


def answer_queries(
    name: str,
    queries: list[dict[str, Any]],
    run: ModelPass,
    reader: Callable[[str], Iterable[dict[str, Any]]] = read_jsonl,
    *,
    load: Callable[[], "ImageTextGenerator"] | None = None,
    unit: str = "responses",
) -> list[dict[str, Any]]:
    """Every response to `queries` now in --responses-out (or a temporary file), read back by `reader`: a
    resumed run returns the earlier ones too. Records of other ids in that file are left out.

    The records name the model `run.model`; `load` replaces `run.load` (a caller's own LVLM)."""
    import tempfile

    from clipdpo_cli.io.runner import IOSettings, check_io, run_stage
    from clipdpo_cli.stages.respond import respond_records

    with tempfile.TemporaryDirectory(prefix=f"clipdpo-{name.split()[0]}-") as tmp:
        path = os.path.join(tmp, "queries.jsonl")
        with JsonlWriter(path) as writer:
            writer.write_all(queries)
        out = run.responses_out or os.path.join(tmp, "responses.jsonl")
        io = IOSettings(
            input=path, output=out, quiet=run.quiet, on_error=run.on_error, shard=run.shard,
            resume=run.resume, progress_every=run.progress_every,
        )  # fmt: skip
        check_io(io)  # a -r into a missing folder fails now, not after the model loaded
        lvlm = (load or run.load)()
        run_stage(
            name,
            io,
            lambda records, ctx: respond_records(records, lvlm, run.generation, ctx, model=run.model),
            one_to_one=True,
            total=len(queries),
            unit=unit,
        )
        wanted = {q["id"] for q in queries}
        return [r for r in reader(out) if r.get("id") in wanted]


def write_query_file(name: str, path: str, queries: list[dict[str, Any]], quiet: bool) -> None:
    """--write-queries: the benchmark's queries as respond records (JSONL) in `path` ('-': stdout)."""
    with JsonlWriter(path) as writer:
        writer.write_all(queries)
    if not quiet:
        say(f"clipdpo {name}: {len(queries):,} queries written; answer them with `clipdpo respond FILE -m "
            "MODEL`, score the answers with --responses")  # fmt: skip


def answered_only(name: str, run: ModelPass | None, generate_only: bool, quiet: bool) -> bool:
    """Whether a --model run stops once its responses are written: --generate-only, or one shard of several
    (the shards' files are scored together, which is said on stderr)."""
    if run is None:
        return False
    sharded = not Shard.parse(run.shard).is_whole
    if sharded and not quiet:
        say(f"clipdpo {name}: one shard's responses written; score them all together with --responses "
            "(concatenate the shards' files)")  # fmt: skip
    return generate_only or sharded

