"""`clipdpo eval-amber`: the AMBER hallucination benchmark (paper Sec. 6.1, Table 2); its options are
AmberEvalSettings' fields (eval/amber/run.py)."""

from typing import Any

from clipdpo_cli.commands.eval_options import benchmark_command, benchmark_settings
from clipdpo_cli.eval.amber.run import AmberEvalSettings

NAME = "eval-amber"
SUMMARY = "AMBER hallucination benchmark: generate responses and score them as the official scorer."


@benchmark_command(AmberEvalSettings)
def command(settings: dict[str, Any]) -> None:
    """clipdpo eval-amber --model out/ --amber-root AMBER/ -r responses.jsonl > amber.json

    Answer AMBER's queries with an LVLM (--model) or read responses made elsewhere (--responses), then
    score them with the official algorithm: CHAIR, Cover, Hal, Cog; Accuracy, Precision, Recall, F1 (per
    type too); AMBER score. The metrics go to stdout as JSON, a table to stderr.
    """
    from clipdpo_cli.eval.amber.run import run_eval

    run_eval(benchmark_settings(AmberEvalSettings, settings))
