"""`clipdpo respond`: an LVLM's response to each query {id, image, prompt} (benchmarks' generation pass).

Its options are RespondSettings' fields and the generation group's (models/generation_settings.py)."""

from dataclasses import MISSING
from typing import Any

from clipdpo_cli.commands.clip_options import ImageRootOpt, WorkersOpt
from clipdpo_cli.commands.generation import generation_command
from clipdpo_cli.commands.options import stage_command
from clipdpo_cli.commands.settings_options import option_parameter
from clipdpo_cli.io.runner import IOSettings, run_stage
from clipdpo_cli.io.setting import declared
from clipdpo_cli.stages.respond import RespondSettings, YesNo

__all__ = ["YesNo", "YesNoOpt"]

NAME = "respond"
SUMMARY = "Answer queries {id, image, prompt} with an LVLM (yes/no ones by next-token probabilities)."

_INPUT = (
    "Query records {id, image, prompt} (and \"yes_no\": true for a yes/no question): JSONL ('-' is stdin), "
    "JSON, a HF dataset, parquet, arrow or webdataset shards (see --input-format)."
)
YesNoOpt = option_parameter(declared(RespondSettings, ("yes_no",))[0], {}).annotation  # eval-amber's too


@stage_command(input_help=_INPUT)
@generation_command(RespondSettings, {"workers": WorkersOpt, "image_root": ImageRootOpt}, model=MISSING)
def command(io: IOSettings, settings: dict[str, Any]) -> None:
    """clipdpo eval-amber --amber-root A --write-queries q.jsonl && clipdpo respond q.jsonl -m out/ > r.jsonl

    One record per query: the query's fields plus response, model and mode (describe, yes_no_prob with
    p_yes and p_no, or yes_no_generate with the raw text). Greedy by default (temperature 0).
    """
    from clipdpo_cli.models.generation_settings import GenerationSettings, pick
    from clipdpo_cli.stages.respond import respond_records

    gen = GenerationSettings.of(settings)
    stage = RespondSettings(**pick(RespondSettings, settings))
    lvlm = gen.open_image_text()
    run_stage(NAME, io, lambda records, ctx: respond_records(records, lvlm, stage, ctx), one_to_one=True)
