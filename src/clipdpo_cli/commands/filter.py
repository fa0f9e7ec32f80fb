"""`clipdpo filter`: global filtering (paper Sec. 4.2); its options are FilterSettings' fields."""

from typing import Any

from clipdpo_cli.commands.options import RejectsOpt, ScoreFieldOpt, stage_command
from clipdpo_cli.commands.settings_options import settings_options
from clipdpo_cli.io.runner import IOSettings, run_selection
from clipdpo_cli.io.setting import declared
from clipdpo_cli.stages.filter import FilterSettings

NAME = "filter"
SUMMARY = "Drop low-score, long and text-image records by rule (paper Sec. 4.2)."


@stage_command(lines_only=NAME)
@settings_options(declared(FilterSettings), {"score_field": ScoreFieldOpt}, config=True)
def command(io: IOSettings, settings: dict[str, Any], rejects: RejectsOpt = None) -> None:
    """clipdpo score ... | clipdpo filter --min-caption-score 28 > kept.jsonl

    Drop low-scoring captions and questions, long captions, most text images, and whatever --where
    excludes. Each dropped record is counted by reason in the summary (and written to --rejects).
    """
    from clipdpo_cli.stages.filter import filter_batch

    run_selection(NAME, io, filter_batch(FilterSettings(**settings)))
