"""`clipdpo pair`: DPO preference pairs from scored captions and QA records (paper Sec. 4.2); its options
are PairSettings' fields."""

from typing import Any

from clipdpo_cli.commands.options import InputOrderOpt, RejectsOpt, ScoreFieldOpt, stage_command
from clipdpo_cli.commands.settings_options import settings_options
from clipdpo_cli.io.runner import IOSettings, run_stage
from clipdpo_cli.io.setting import declared
from clipdpo_cli.stages.pair import PairSettings

NAME = "pair"
SUMMARY = "Turn scored captions and QA records into DPO preference pairs."


@stage_command()
@settings_options(
    declared(PairSettings), {"score_field": ScoreFieldOpt, "input_order": InputOrderOpt}, config=True
)
def command(io: IOSettings, settings: dict[str, Any], rejects: RejectsOpt = None) -> None:
    """clipdpo filter ... | clipdpo pair > pairs.jsonl

    Per image, the caption pairs with the largest CLIP-score margin (> --min-margin) and similar lengths,
    plus the QA records whose answer passes --min-answer-score, as {image, prompt, chosen, rejected} pairs.
    --source injected / noised pairs POVID's dispreferred answers instead (docs/probe.md).
    """
    from clipdpo_cli.stages.pair import pair_records

    rules = PairSettings(**settings)
    run_stage(NAME, io, lambda records, ctx: pair_records(records, rules, ctx))
