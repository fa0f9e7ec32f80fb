"""Building the report: read the inputs, compute each figure's data, draw, and write the page.

The sections are sections.py's (the pipeline's files) and benchmark_sections.py's (the benchmark results).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from clipdpo_cli import __version__
from clipdpo_cli.io.errors import InputError
from clipdpo_cli.report import benchmark_sections, data, inputs, sections
from clipdpo_cli.report.benchmarks import benchmark_table
from clipdpo_cli.report.page import Figure, Section, render
from clipdpo_cli.report.sections import log
from clipdpo_cli.report.settings import THRESHOLD_KINDS, THRESHOLD_OPTIONS, ReportSettings


@dataclass
class Report:
    html: str
    sections: list[Section]

    @property
    def figures(self) -> list[Figure]:
        return [f for s in self.sections for f in s.figures]


def check_inputs(opts: ReportSettings) -> None:
    """Every named file is there, before the long reads begin (InputError naming the first missing one)."""
    for arg in opts.inputs:
        path = inputs.labelled(arg)[1]
        if path != "-" and not os.path.exists(path):
            raise InputError(f"input file not found: {path}")


def build_report(opts: ReportSettings) -> Report:
    """Every section the inputs allow, in pipeline order; a missing input leaves its section out."""
    from clipdpo_cli.report.figures import figure_style

    check_inputs(opts)
    listed: list[tuple[str, str]] = []  # (what, path) of every input, as the page lists them
    shown: list[Section] = []
    with figure_style():
        drops: list[tuple[str, int]] = []
        if opts.rejects:
            drops = data.drops_per_rule(inputs.records(opts.rejects, opts.quiet))
            listed += [("rejects", p) for p in opts.rejects]
            log(opts, f"read {sum(n for _, n in drops):,} rejects from {', '.join(opts.rejects)}")
        if opts.scored:
            listed += [("scored", p) for p in opts.scored]
            shown += sections.score_sections(opts, *score_thresholds(opts, drops))
        if drops:
            shown.append(sections.drops_section(drops))
        if opts.pairs:
            listed += [("pairs", p) for p in opts.pairs]
            shown += sections.pair_sections(opts)
        if opts.train:
            runs = [inputs.read_train(arg) for arg in opts.train]
            listed += [("training", run.source) for run in runs]
            shown.append(sections.training_section(runs))
        shown += result_sections(opts, listed)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    page = render(
        opts.title,
        f"CLIP-DPO run report · {stamp}",
        [(what, inputs.shown_path(path)) for what, path in listed],
        shown,
        f"Written by clipdpo {__version__} (clipdpo report). Self-contained: figures are embedded; "
        "nothing is loaded from the network.",
    )
    return Report(page, shown)


def score_thresholds(
    opts: ReportSettings, drops: list[tuple[str, int]]
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Each score kind's threshold and where it came from: the command line's, else the one the rejects'
    reasons recorded, else none."""
    recorded = data.thresholds_from_reasons(r for r, _ in drops)
    thresholds: dict[str, float | None] = {}
    origins: dict[str, str] = {}
    for kind in THRESHOLD_KINDS:
        if kind in opts.thresholds:
            thresholds[kind], origins[kind] = opts.thresholds[kind], THRESHOLD_OPTIONS[kind]
        elif kind in recorded:
            thresholds[kind], origins[kind] = recorded[kind], "the rejects' reasons"
        else:
            thresholds[kind], origins[kind] = None, ""
    return thresholds, origins


def result_sections(opts: ReportSettings, listed: list[tuple[str, str]]) -> list[Section]:
    """The benchmark results' sections (AMBER, zero-shot, checkpoints x benchmarks); their inputs are
    added to `listed`."""
    shown = []
    if opts.amber:
        results = inputs.read_amber(opts.amber)
        listed += [(f"AMBER ({r.label})", r.path) for r in results]
        shown.append(benchmark_sections.amber_section(results))
    zs = []
    if opts.zeroshot:
        zs = inputs.read_zeroshot(opts.zeroshot)
        listed += [(f"zero-shot ({r.label})", r.path) for r in zs]
        shown.append(benchmark_sections.zeroshot_section(zs))
    pope = inputs.read_benchmark(opts.pope, "pope", "eval-pope")
    chair = inputs.read_benchmark(opts.chair, "chair", "eval-chair")
    listed += [(f"POPE ({r.label})", r.path) for r in pope] + [(f"CHAIR ({r.label})", r.path) for r in chair]
    if opts.compare or pope or chair:
        amber = inputs.read_amber(opts.amber) if opts.amber else []
        if not (amber or pope or chair or zs):
            raise InputError("--compare needs results: --amber, --pope, --chair or --zeroshot")
        table_data = benchmark_table(
            [(r.label, r.result) for r in amber],
            [(r.label, r.result) for r in pope],
            [(r.label, r.result) for r in chair],
            [(r.label, r.lines) for r in zs],
        )
        shown.append(benchmark_sections.benchmarks_section(table_data, [*pope, *chair]))
    return shown


def write_report(report: Report, output: str, png_dir: str | None = None) -> list[str]:
    """The HTML file, and the figures as PNG files in `png_dir`; the paths written."""
    written = []
    try:
        parent = os.path.dirname(os.path.abspath(output))
        os.makedirs(parent, exist_ok=True)
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(report.html)
        written.append(output)
        if png_dir:
            os.makedirs(png_dir, exist_ok=True)
            for fig in report.figures:
                path = os.path.join(png_dir, f"{fig.name}.png")
                with open(path, "wb") as fh:
                    fh.write(fig.png)
                written.append(path)
    except OSError as exc:
        raise InputError(
            f"cannot write the report: {exc.strerror or exc} ({exc.filename or output})"
        ) from None
    return written
