"""The in-process respond pass of a benchmark command's `--model` (eval-amber, eval-pope, eval-chair): the
benchmark's queries written to a temporary file and answered by the respond stage on the shared runner
(--shard, --resume, progress and the summary come from io/runner.py).

`clipdpo eval-X --model M -r r.jsonl` is therefore `eval-X --write-queries q.jsonl; respond q.jsonl -m M
-o r.jsonl; eval-X --responses r.jsonl` in one command.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.io.jsonl import JsonlWriter, read_jsonl
from clipdpo_cli.io.progress import DEFAULT_EVERY
from clipdpo_cli.models.generator import EngineSettings
from clipdpo_cli.stages.respond import RespondSettings


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
    quiet: bool = False
    progress_every: float = DEFAULT_EVERY
    engine: EngineSettings = field(default_factory=EngineSettings)  # --engine hf (in-process) or openai


def check_pass_options(
    model: str | None,
    responses: str | None,
    responses_out: str | None,
    resume: bool,
    shard: str | None,
    write_queries: str | None,
) -> None:
    """eval-amber's usage rules: one of --model / --responses; -r, --resume, --shard with --model."""
    if write_queries is not None:
        if model or responses:
            raise UsageError("--write-queries only writes the queries (no --model, no --responses)")
        return
    if (model is None) == (responses is None):
        raise UsageError("give exactly one of --model (generate responses) or --responses FILE (score them)")
    if responses and (responses_out or resume or shard):
        raise UsageError("--responses-out, --resume and --shard go with --model")
    if resume and not responses_out:
        raise UsageError("--resume needs --responses-out FILE (the ids already in FILE are skipped)")


def answer_queries(
    name: str,
    queries: list[dict[str, Any]],
    run: ModelPass,
    reader: Callable[[str], Iterable[dict[str, Any]]] = read_jsonl,
) -> list[dict[str, Any]]:
    """Every response to `queries` now in --responses-out (or a temporary file), read back by `reader`: a
    resumed run returns the earlier ones too. Records of other ids in that file are left out."""
    import tempfile

    from clipdpo_cli.io.runner import IOSettings, check_io, run_stage
    from clipdpo_cli.models.generator import open_image_text_generator
    from clipdpo_cli.stages.respond import respond_records

    with tempfile.TemporaryDirectory(prefix=f"clipdpo-{name}-") as tmp:
        path = os.path.join(tmp, "queries.jsonl")
        with JsonlWriter(path) as writer:
            writer.write_all(queries)
        out = run.responses_out or os.path.join(tmp, "responses.jsonl")
        io = IOSettings(
            input=path,
            output=out,
            quiet=run.quiet,
            shard=run.shard,
            resume=run.resume,
            progress_every=run.progress_every,
        )
        check_io(io)  # a -r into a missing folder fails now, not after the model loaded
        lvlm = open_image_text_generator(
            run.model, run.engine, run.device, run.dtype, run.chat_template, run.max_pixels
        )
        run_stage(
            name,
            io,
            lambda records, ctx: respond_records(records, lvlm, run.generation, ctx),
            one_to_one=True,
            total=len(queries),
            unit="responses",
        )
        wanted = {q["id"] for q in queries}
        return [r for r in reader(out) if r.get("id") in wanted]
