"""`clipdpo report`: one self-contained HTML page with the figures of a run (and, optionally, PNG files); its
options are ReportSettings' fields."""

import os
from typing import Any

from clipdpo_cli.commands.clip_options import ImageRootOpt
from clipdpo_cli.commands.options import QuietOpt, ScoreFieldOpt
from clipdpo_cli.commands.settings_options import settings_options
from clipdpo_cli.io.log import info
from clipdpo_cli.io.setting import declared
from clipdpo_cli.report.settings import INPUTS, ReportSettings

NAME = "report"
SUMMARY = (
    "An offline HTML page (and PNGs) of a run: score histograms, drops, pairs, training, AMBER, zero-shot."
)
SHARED = {"score_field": ScoreFieldOpt, "image_root": ImageRootOpt, "quiet": QuietOpt}


@settings_options(declared(ReportSettings), SHARED, config=True)
def command(settings: dict[str, Any]) -> None:
    """clipdpo report --scored scored.jsonl --pairs pairs.jsonl --train out/ --amber amber.json -o report.html

    Reads whatever of a run it is given and writes one HTML file that needs nothing else (figures and
    thumbnails embedded, no network): CLIP score histograms per category with the filter's thresholds
    (the paper's Fig. 4), records dropped per rule, pair margins, lengths and pairs per image, example
    pairs with their images, training loss / reward margin / reward accuracy over steps, AMBER metrics of
    several models side by side, the zero-shot table, and (--compare, or with --pope / --chair)
    one table and figure of every checkpoint on every benchmark. Inputs not given leave their section out.
    """
    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.report.build import build_report, write_report

    opts = ReportSettings(**settings)
    if not opts.inputs:
        raise UsageError(
            f"nothing to report: give at least one of {', '.join('--' + kind for kind in INPUTS)}"
        )
    check_report_outputs(opts)
    report = build_report(opts)
    written = write_report(report, opts.output, opts.png_dir)
    size = os.path.getsize(opts.output) / 1024
    pngs = f", {len(written) - 1} PNG files in {opts.png_dir}" if opts.png_dir else ""
    names = ", ".join(s.title for s in report.sections)
    info(NAME, f"wrote {opts.output} ({size:,.0f} KiB; {names}){pngs}", opts.quiet)


def check_report_outputs(opts: ReportSettings) -> None:
    """No file the report writes (the page, the PNGs) is one of the files it reads (io/outputs.py)."""
    from clipdpo_cli.io.outputs import check_outputs
    from clipdpo_cli.report.inputs import labelled

    inputs = [(f"--{kind}", path) for kind in ("scored", "rejects", "pairs") for path in getattr(opts, kind)]
    for kind in ("train", "amber", "zeroshot"):
        for arg in getattr(opts, kind):
            path = labelled(arg)[1]
            inputs.append((f"--{kind}", path))
            if kind == "train" and os.path.isdir(path):
                names = ("train_summary.json", "trainer_state.json")
                inputs += [(f"--{kind}", os.path.join(path, n)) for n in names]
    output, png_dir = opts.output, opts.png_dir
    pngs = []  # the figures' PNG files that exist already: a run writes over them
    if png_dir and os.path.isdir(png_dir):
        names = sorted(n for n in os.listdir(png_dir) if n.endswith(".png"))
        pngs = [("--png-dir", os.path.join(png_dir, n)) for n in names]
    check_outputs([("-o", output), *pngs], inputs)
