"""`clipdpo ask`: per-image questions with positive and negative answers, written by a text LLM (Sec. 4.1).

Its options are AskSettings' fields and the generation group's (models/generation_settings.py)."""

from typing import Any

from clipdpo_cli.commands.generation import generation_command
from clipdpo_cli.commands.options import InputOrderOpt, RejectsOpt, stage_command
from clipdpo_cli.io.runner import IOSettings, run_stage
from clipdpo_cli.models.generation_settings import LLM_HELP
from clipdpo_cli.stages.ask import AskSettings

NAME = "ask"
SUMMARY = "Questions with positive and negative answers per image, from its captions, by an LLM."


@stage_command()
@generation_command(
    AskSettings, {"input_order": InputOrderOpt}, without=("max_pixels",),
    model="teknium/OpenHermes-2.5-Mistral-7B", model_help=LLM_HELP,
)  # fmt: skip
def command(io: IOSettings, settings: dict[str, Any], rejects: RejectsOpt = None) -> None:
    """clipdpo caption imgs/ | clipdpo ask -m teknium/OpenHermes-2.5-Mistral-7B | clipdpo score > qa.jsonl

    Reads caption records, groups them by image, and asks the LLM for --questions questions per image, each
    with a positive answer (consistent with the captions) and a plausible wrong one. Writes one record per
    question: {id, image, kind: "qa", question, answer_pos, answer_neg, text, from}. A reply that is not
    usable JSON is dropped and counted (with --rejects, written there with the raw reply).
    """
    from clipdpo_cli.models.generation_settings import GenerationSettings, pick
    from clipdpo_cli.stages.ask import ask_records

    gen = GenerationSettings.of(settings)
    stage = AskSettings(**pick(AskSettings, settings))
    llm = gen.open_text()
    run_stage(NAME, io, lambda records, ctx: ask_records(records, llm, stage, ctx))
