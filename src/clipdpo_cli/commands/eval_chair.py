"""`clipdpo eval-chair`: CHAIRs / CHAIRi of descriptions against COCO (Object HalBench's protocol); its
options are ChairEvalSettings' fields (eval/chair/run.py)."""

from typing import Any

from clipdpo_cli.commands.eval_options import benchmark_command, benchmark_settings
from clipdpo_cli.eval.chair.run import ChairEvalSettings

NAME = "eval-chair"
SUMMARY = "CHAIR (Object HalBench): describe COCO images, count hallucinated objects as the reference code."


@benchmark_command(ChairEvalSettings)
def command(settings: dict[str, Any]) -> None:
    """clipdpo eval-chair --coco-annotations instances_val2014.json --image-ids ids.txt -m out/ > chair.json

    Describe COCO images with an LVLM (--model) or read descriptions made elsewhere (--responses), then count
    their COCO objects as CHAIR's reference code does (synonyms, plural forms, two-word objects): CHAIRs
    (descriptions with a hallucinated object), CHAIRi (hallucinated object mentions), recall of the
    ground-truth objects and length. The metrics go to stdout as JSON, a table to stderr.
    """
    from clipdpo_cli.eval.chair.run import run_eval

    run_eval(benchmark_settings(ChairEvalSettings, settings))
