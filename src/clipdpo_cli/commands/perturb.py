"""`clipdpo perturb`: hallucinated variants (existence, attribute, relation) of captions (Sec. 3.1)."""

import enum
from typing import Annotated

import typer

from clipdpo_cli.commands.generation import (
    BatchSizeOpt,
    ChatTemplateOpt,
    Dtype,
    DtypeOpt,
    MaxNewTokensOpt,
    TemperatureOpt,
    TopPOpt,
    engine_options,
)
from clipdpo_cli.commands.options import DeviceOpt, RejectsOpt, stage_command
from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.io.runner import IOSettings, run_stage
from clipdpo_cli.models.generator import EngineSettings

NAME = "perturb"
SUMMARY = "Hallucinated variants (existence, attribute, relation) of trusted captions, by rules or an LLM."


class Method(str, enum.Enum):
    rules = "rules"
    llm = "llm"


@stage_command(input_help="Input JSONL with `image` and a trusted caption, '-' for stdin (default).")
@engine_options
def command(
    io: IOSettings,
    engine: EngineSettings,
    method: Annotated[
        Method, typer.Option(help="rules: deterministic word rules, no model; llm: a chat LLM (-m).")
    ] = Method.rules,
    types: Annotated[
        str, typer.Option(help="Hallucination types to make, comma-separated.")
    ] = "existence,attribute,relation",
    field: Annotated[str, typer.Option(help="The field holding the trusted caption.")] = "text",
    objects: Annotated[
        str | None,
        typer.Option(
            help="Rules: file of object nouns, one per line, replacing the packaged ~50 COCO objects.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="LLM: chat LLM, Hugging Face id or local directory (causal LM); --engine openai: the served "
            "model's name.",
            show_default=False,
        ),
    ] = None,
    prompts: Annotated[
        str | None,
        typer.Option(
            help="LLM: JSON {type: prompt template with {caption}} replacing the packaged prompts.",
            show_default=False,
        ),
    ] = None,
    temperature: TemperatureOpt = 0.7,
    top_p: TopPOpt = 0.95,
    max_new_tokens: MaxNewTokensOpt = 256,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Rules: picks the word or object changed (the output is the same every run, with or "
            "without it). LLM: each variant is sampled from its own stream seeded by this and its id."
        ),
    ] = None,
    batch_size: BatchSizeOpt = 8,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = Dtype.auto,
    chat_template: ChatTemplateOpt = None,
    rejects: RejectsOpt = None,
) -> None:
    """clipdpo perturb captions.jsonl --method rules | clipdpo score -m dfn-h14 > probe.jsonl

    Writes each input record first, with `original` (its caption), `hallucination: "none"` and `from` (its
    id), then one record per type that could be made: {id, image, text: the variant, original,
    hallucination: existence|attribute|relation, from, method, perturb_model (llm)}, other fields kept.
    A type the rules cannot apply (no color or number word, no relation phrase) or an unusable LLM reply is
    dropped and counted (with --rejects, written there).
    """
    from clipdpo_cli.stages.perturb import (
        PerturbSettings,
        parse_types,
        perturb_records,
        read_objects,
        read_prompts,
    )

    kinds = parse_types(types)
    if method is Method.llm and not model:
        raise UsageError("--method llm needs -m MODEL (a chat LLM)")
    if method is Method.rules and (model or prompts or chat_template or engine.served):
        raise UsageError("-m, --prompts, --chat-template and --engine openai are for --method llm")
    if method is Method.llm and objects:
        raise UsageError("--objects is for --method rules")
    llm = None
    if method is Method.llm:
        from clipdpo_cli.models.sampling import check_sampling

        check_sampling(temperature, top_p, max_new_tokens)
        settings = PerturbSettings(
            types=kinds,
            text_field=field,
            seed=seed,
            prompts=read_prompts(prompts),
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
        )
        missing = [k for k in kinds if k not in settings.prompts]
        if missing:
            raise UsageError(f"the prompts file has no template for {', '.join(missing)}")
        from clipdpo_cli.models.generator import open_text_generator

        llm = open_text_generator(model, engine, device, dtype.value, chat_template)
    else:
        settings = PerturbSettings(
            types=kinds, text_field=field, seed=seed, objects=tuple(read_objects(objects))
        )
    run_stage(NAME, io, lambda records, ctx: perturb_records(records, settings, ctx, llm))
