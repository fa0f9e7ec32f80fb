"""`clipdpo ask`: per-image questions with positive and negative answers, written by a text LLM (Sec. 4.1)."""

from typing import Annotated

import typer

from clipdpo_cli.commands.generation import (
    BatchSizeOpt,
    ChatTemplateOpt,
    Dtype,
    DtypeOpt,
    MaxNewTokensOpt,
    SeedOpt,
    TemperatureOpt,
    TopPOpt,
    engine_options,
)
from clipdpo_cli.commands.options import DeviceOpt, InputOrder, InputOrderOpt, RejectsOpt, stage_command
from clipdpo_cli.io.runner import IOSettings, run_stage
from clipdpo_cli.models.generator import EngineSettings

NAME = "ask"
SUMMARY = "Questions with positive and negative answers per image, from its captions, by an LLM."


@stage_command()
@engine_options
def command(
    io: IOSettings,
    engine: EngineSettings,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Chat LLM: Hugging Face id or local directory (causal LM); --engine openai: the served "
            "model's name.",
        ),
    ] = "teknium/OpenHermes-2.5-Mistral-7B",
    questions: Annotated[int, typer.Option(min=1, help="Questions asked per image.")] = 2,
    max_captions: Annotated[
        int, typer.Option(min=1, help="Captions of an image shown to the LLM (first N).")
    ] = 5,
    temperature: TemperatureOpt = 0.7,
    top_p: TopPOpt = 0.95,
    max_new_tokens: MaxNewTokensOpt = 256,
    seed: SeedOpt = None,
    batch_size: BatchSizeOpt = 8,
    input_order: InputOrderOpt = InputOrder.grouped,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = Dtype.auto,
    chat_template: ChatTemplateOpt = None,
    rejects: RejectsOpt = None,
) -> None:
    """clipdpo caption imgs/ | clipdpo ask -m teknium/OpenHermes-2.5-Mistral-7B | clipdpo score > qa.jsonl

    Reads caption records, groups them by image, and asks the LLM for --questions questions per image, each
    with a positive answer (consistent with the captions) and a plausible wrong one. Writes one record per
    question: {id, image, kind: "qa", question, answer_pos, answer_neg, text, from}. A reply that is not
    usable JSON is dropped and counted (with --rejects, written there with the raw reply).
    """
    from clipdpo_cli.models.generator import open_text_generator
    from clipdpo_cli.models.sampling import check_sampling
    from clipdpo_cli.stages.ask import AskSettings, ask_records

    check_sampling(temperature, top_p, max_new_tokens)
    settings = AskSettings(
        questions=questions,
        max_captions=max_captions,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        batch_size=batch_size,
        input_order=input_order.value,
    )
    llm = open_text_generator(model, engine, device, dtype.value, chat_template)
    run_stage(NAME, io, lambda records, ctx: ask_records(records, llm, settings, ctx))
