"""`clipdpo perturb`: hallucinated variants (existence, attribute, relation) of captions (Sec. 3.1).

Its options are --method, PerturbSettings' fields and the generation group's (models/generation_settings.py).
"""

import enum
from typing import Annotated, Any

import typer

from clipdpo_cli.commands.generation import generation_command
from clipdpo_cli.commands.options import RejectsOpt, stage_command
from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.io.runner import IOSettings, run_stage
from clipdpo_cli.stages.perturb import PerturbSettings

NAME = "perturb"
SUMMARY = "Hallucinated variants (existence, attribute, relation) of trusted captions, by rules or an LLM."

LLM_MODEL_HELP = (
    "LLM: chat LLM, Hugging Face id or local directory (causal LM); --engine openai: the served model's name."
)


class Method(str, enum.Enum):
    rules = "rules"
    llm = "llm"


@stage_command(input_help="Input JSONL with `image` and a trusted caption, '-' for stdin (default).")
@generation_command(PerturbSettings, without=("max_pixels",), model=None, model_help=LLM_MODEL_HELP)
def command(
    io: IOSettings,
    settings: dict[str, Any],
    method: Annotated[
        Method, typer.Option(help="rules: deterministic word rules, no model; llm: a chat LLM (-m).")
    ] = Method.rules,
    rejects: RejectsOpt = None,
) -> None:
    """clipdpo perturb captions.jsonl --method rules | clipdpo score -m dfn-h14 > probe.jsonl

    Writes each input record first, with `original` (its caption), `hallucination: "none"` and `from` (its
    id), then one record per type that could be made: {id, image, text: the variant, original,
    hallucination: existence|attribute|relation, from, method, perturb_model (llm)}, other fields kept.
    A type the rules cannot apply (no color or number word, no relation phrase) or an unusable LLM reply is
    dropped and counted (with --rejects, written there).
    """
    from clipdpo_cli.models.generation_settings import GenerationSettings, pick
    from clipdpo_cli.stages.perturb import perturb_records

    gen = GenerationSettings.of(settings)
    if method is Method.llm and not gen.model:
        raise UsageError("--method llm needs -m MODEL (a chat LLM)")
    given = {k: v for k, v in pick(PerturbSettings, settings).items() if v is not None}  # else the default
    llm_only = gen.model or "prompts" in given or gen.chat_template or gen.engine != "hf"
    if method is Method.rules and llm_only:
        raise UsageError("-m, --prompts, --chat-template and --engine openai are for --method llm")
    if method is Method.llm and "objects" in given:
        raise UsageError("--objects is for --method rules")
    stage = PerturbSettings(**given)
    missing = [k for k in stage.types if k not in stage.prompts]
    if method is Method.llm and missing:
        raise UsageError(f"the prompts file has no template for {', '.join(missing)}")
    llm = gen.open_text() if method is Method.llm else None
    run_stage(NAME, io, lambda records, ctx: perturb_records(records, stage, ctx, llm))
