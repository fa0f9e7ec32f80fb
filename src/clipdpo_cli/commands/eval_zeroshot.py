"""`clipdpo eval-zeroshot`: caption-based zero-shot classification (paper Sec. 6.2, Table 3); its options are
ZeroshotSettings' fields (eval/zeroshot/settings.py)."""

from typing import Annotated, Any

import typer

from clipdpo_cli.commands.eval_options import benchmark_command, benchmark_settings
from clipdpo_cli.eval.zeroshot.settings import ZeroshotSettings
from clipdpo_cli.io.log import info

NAME = "eval-zeroshot"
SUMMARY = "Zero-shot classification from the LVLM's captions, vs. CLIP (paper Sec. 6.2, Table 3)."

InputsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Labelled sets: image folders (one sub-folder per class) or JSONL files of {image, label}.",
        show_default=False,
    ),
]


@benchmark_command(ZeroshotSettings, without=("temperature", "top_p", "seed"))
def command(settings: dict[str, Any], inputs: InputsArg = None) -> None:
    """clipdpo eval-zeroshot --dataset all --data-root data/ --model out/ --captions caps.jsonl > zs.jsonl

    Each image is captioned by the LVLM ("describe the main object"), the caption is embedded with a
    SigLIP text encoder and given the class whose prompt prototype is most similar (text to text), as in
    the paper's Table 3. Writes one JSON line per dataset (top-1, top-5, mean per-class recall, in %)
    plus an average line, and a Table-3-like table on stderr. Captions are cached in --captions, so
    another --text-encoder re-scores them without regeneration (and without --model); --baseline clip adds
    the usual CLIP zero-shot numbers of the text encoder's own image tower.
    """
    from clipdpo_cli.eval.zeroshot.pipeline import evaluate, format_table
    from clipdpo_cli.eval.zeroshot.sets import eval_sets, load_sets
    from clipdpo_cli.io.jsonl import JsonlWriter
    from clipdpo_cli.io.outputs import check_outputs

    opts = benchmark_settings(ZeroshotSettings, settings)

    def log(msg: str) -> None:
        info(NAME, msg, opts.quiet)

    written = [(option, path) for option, path in (("-o", opts.output), ("--predictions", opts.predictions))]
    read = [("", path) for path in inputs or []] + [("--captions", path) for path in opts.captions]
    check_outputs([(option, path) for option, path in written if path], read)
    loaded = load_sets(inputs or [], opts.dataset, opts.data_root, opts.split, opts.image_root)
    results = evaluate(eval_sets(loaded, opts.split, opts.classnames, opts.templates, log), opts, log)
    if results:
        with JsonlWriter(opts.output) as writer:
            writer.write_all(results)
        log("\n" + format_table(results))
