"""`clipdpo eval-pope`: the POPE object-hallucination benchmark (yes/no questions on COCO val2014); its
options are PopeEvalSettings' fields (eval/pope/run.py)."""

from typing import Any

from clipdpo_cli.commands.eval_options import benchmark_command, benchmark_settings
from clipdpo_cli.eval.pope.run import PopeEvalSettings

NAME = "eval-pope"
SUMMARY = "POPE benchmark: answer its yes/no questions and score them as its official evaluate.py."


@benchmark_command(PopeEvalSettings, without=("temperature", "top_p", "seed"))
def command(settings: dict[str, Any]) -> None:
    """clipdpo eval-pope --pope-root pope/ --image-root val2014/ --model out/ -r pope.jsonl > pope.json

    Answer POPE's yes/no questions (random, popular, adversarial) with an LVLM (--model) or read responses
    made elsewhere (--responses); per set: accuracy, precision, recall, F1 and yes-ratio, answers read as the
    benchmark's evaluate.py reads them (or from p_yes/p_no under --yes-no prob). The metrics go to stdout as
    JSON, a table to stderr.
    """
    from clipdpo_cli.eval.pope.run import run_eval

    run_eval(benchmark_settings(PopeEvalSettings, settings))
