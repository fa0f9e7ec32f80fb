"""`clipdpo report`: one self-contained HTML page with the figures of a run (and, optionally, PNG files)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from clipdpo_cli.report.build import ReportSettings

NAME = "report"
SUMMARY = (
    "An offline HTML page (and PNGs) of a run: score histograms, drops, pairs, training, AMBER, zero-shot."
)

_LABELLED = (
    " [LABEL=]FILE, repeatable (LABEL names it in the figures; default its model, else the file name)."
)


def command(
    scored: Annotated[
        list[str] | None,
        typer.Option(
            metavar="FILE",
            help="Scored (and categorized) records, JSONL: score histograms per category. Repeatable.",
            show_default=False,
        ),
    ] = None,
    rejects: Annotated[
        list[str] | None,
        typer.Option(
            metavar="FILE",
            help="A --rejects file of filter, pair or ask: records dropped per rule, and the score "
            "thresholds the reasons record. Repeatable.",
            show_default=False,
        ),
    ] = None,
    pairs: Annotated[
        list[str] | None,
        typer.Option(
            metavar="FILE",
            help="Pairs JSONL (clipdpo pair): margins, lengths, pairs per image, example cards. "
            "Repeatable (shards).",
            show_default=False,
        ),
    ] = None,
    train: Annotated[
        list[str] | None,
        typer.Option(
            metavar="[LABEL=]PATH",
            help="A train --output-dir (or its train_summary.json / trainer_state.json): loss and "
            "reward curves. [LABEL=]PATH, repeatable to compare runs.",
            show_default=False,
        ),
    ] = None,
    amber: Annotated[
        list[str] | None,
        typer.Option(
            metavar="[LABEL=]FILE", help="An eval-amber result (JSON)." + _LABELLED, show_default=False
        ),
    ] = None,
    zeroshot: Annotated[
        list[str] | None,
        typer.Option(
            metavar="[LABEL=]FILE", help="An eval-zeroshot output (JSONL)." + _LABELLED, show_default=False
        ),
    ] = None,
    pope: Annotated[
        list[str] | None,
        typer.Option(
            metavar="[LABEL=]FILE", help="An eval-pope result (JSON)." + _LABELLED, show_default=False
        ),
    ] = None,
    chair: Annotated[
        list[str] | None,
        typer.Option(
            metavar="[LABEL=]FILE", help="An eval-chair result (JSON)." + _LABELLED, show_default=False
        ),
    ] = None,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare",
            help="The checkpoints x benchmarks table and figure of every --amber, --pope, --chair and "
            "--zeroshot result, joined by label (always drawn with --pope or --chair).",
        ),
    ] = False,
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="FILE", help="The HTML file to write.")
    ] = "report.html",
    png_dir: Annotated[
        str | None,
        typer.Option(
            metavar="DIR", help="Also write each figure as a PNG file into this folder.", show_default=False
        ),
    ] = None,
    min_caption_score: Annotated[
        str | None,
        typer.Option(
            help="Caption threshold to draw ('none': none); default: what the rejects record.",
            show_default=False,
        ),
    ] = None,
    min_question_score: Annotated[
        str | None,
        typer.Option(
            help="Question threshold to draw; default: what the rejects record.", show_default=False
        ),
    ] = None,
    min_answer_score: Annotated[
        str | None,
        typer.Option(
            help="QA answer threshold to draw (pair's); default: what the rejects record.", show_default=False
        ),
    ] = None,
    score_field: Annotated[
        str, typer.Option(help="Field holding the caption (and answer) score.")
    ] = "clip_score",
    question_score_field: Annotated[
        str, typer.Option(help="Field holding the question score.")
    ] = "question_score",
    bin_width: Annotated[
        float | None,
        typer.Option(
            help="Score histogram bin width in points, a multiple of 0.05 (default: fits the range).",
            show_default=False,
        ),
    ] = None,
    examples: Annotated[int, typer.Option(min=0, help="Example pairs shown with their images.")] = 6,
    image_root: Annotated[
        str | None, typer.Option(help="Relative image paths of the pairs start here.", show_default=False)
    ] = None,
    title: Annotated[str, typer.Option(help="The page's title.")] = "clipdpo report",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Nothing on stderr.")] = False,
) -> None:
    """clipdpo report --scored scored.jsonl --pairs pairs.jsonl --train out/ --amber amber.json -o report.html

    Reads whatever of a run it is given and writes one HTML file that needs nothing else (figures and
    thumbnails embedded, no network): CLIP score histograms per category with the filter's thresholds
    (the paper's Fig. 4), records dropped per rule, pair margins, lengths and pairs per image, example
    pairs with their images, training loss / reward margin / reward accuracy over steps, AMBER metrics of
    several models side by side, the zero-shot table, and (--compare, or with --pope / --chair)
    one table and figure of every checkpoint on every benchmark. Inputs not given leave their section out.
    """
    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.io.values import optional_float
    from clipdpo_cli.report.build import ReportSettings, build_report, write_report

    thresholds = {
        kind: optional_float(value, option)
        for kind, value, option in (
            ("caption", min_caption_score, "--min-caption-score"),
            ("question", min_question_score, "--min-question-score"),
            ("answer", min_answer_score, "--min-answer-score"),
        )
        if value is not None
    }
    if bin_width is not None and (bin_width <= 0 or abs(round(bin_width * 20) - bin_width * 20) > 1e-9):
        raise UsageError(f"--bin-width must be a positive multiple of 0.05, got {bin_width:g}")
    opts = ReportSettings(
        scored=scored or [],
        rejects=rejects or [],
        pairs=pairs or [],
        train=train or [],
        amber=amber or [],
        zeroshot=zeroshot or [],
        pope=pope or [],
        chair=chair or [],
        compare=compare,
        thresholds=thresholds,
        score_field=score_field,
        question_score_field=question_score_field,
        bin_width=bin_width,
        examples=examples,
        image_root=image_root,
        title=title,
        quiet=quiet,
    )
    given = (
        opts.scored,
        opts.rejects,
        opts.pairs,
        opts.train,
        opts.amber,
        opts.zeroshot,
        opts.pope,
        opts.chair,
    )
    if not any(given):
        raise UsageError(
            "nothing to report: give at least one of --scored, --rejects, --pairs, --train, "
            "--amber, --zeroshot, --pope, --chair"
        )
    check_report_outputs(opts, output, png_dir)
    report = build_report(opts)
    written = write_report(report, output, png_dir)
    if not quiet:
        size = os.path.getsize(output) / 1024
        pngs = f", {len(written) - 1} PNG files in {png_dir}" if png_dir else ""
        names = ", ".join(s.title for s in report.sections)
        print(f"clipdpo report: wrote {output} ({size:,.0f} KiB; {names}){pngs}", file=sys.stderr, flush=True)


def check_report_outputs(opts: ReportSettings, output: str, png_dir: str | None) -> None:
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
    pngs = []  # the figures' PNG files that exist already: a run writes over them
    if png_dir and os.path.isdir(png_dir):
        names = sorted(n for n in os.listdir(png_dir) if n.endswith(".png"))
        pngs = [("--png-dir", os.path.join(png_dir, n)) for n in names]
    check_outputs([("-o", output), *pngs], inputs)
