"""Building the report: read the inputs, compute each figure's data, draw, and write the page."""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clipdpo_cli import __version__
from clipdpo_cli.io.errors import BadRecord, InputError
from clipdpo_cli.io.images import resolve_image
from clipdpo_cli.report import data, inputs
from clipdpo_cli.report.page import Figure, Section, data_url, esc, note, render, table
from clipdpo_cli.report.settings import THRESHOLD_KINDS, THRESHOLD_OPTIONS, ReportSettings

DPI = 150


@dataclass
class Report:
    html: str
    sections: list[Section]

    @property
    def figures(self) -> list[Figure]:
        return [f for s in self.sections for f in s.figures]


def _log(opts: ReportSettings, message: str) -> None:
    if not opts.quiet:
        print(f"clipdpo report: {message}", file=sys.stderr, flush=True)


def _figure(name: str, alt: str, draw: Callable[[], Any]) -> Figure:
    from clipdpo_cli.report.figures import to_png

    fig = draw()
    width, _ = fig.get_size_inches()
    return Figure(name, to_png(fig, DPI), alt, int(round(width * 96)))


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
    listed: list[tuple[str, str]] = []
    sections: list[Section] = []
    with figure_style():
        drops: list[tuple[str, int]] = []
        if opts.rejects:
            drops = data.drops_per_rule(inputs.records(opts.rejects, opts.quiet))
            listed += [("rejects", p) for p in opts.rejects]
            _log(opts, f"read {sum(n for _, n in drops):,} rejects from {', '.join(opts.rejects)}")
        recorded = data.thresholds_from_reasons(r for r, _ in drops)
        thresholds, origins = {}, {}
        for kind in THRESHOLD_KINDS:
            if kind in opts.thresholds:
                thresholds[kind], origins[kind] = opts.thresholds[kind], THRESHOLD_OPTIONS[kind]
            elif kind in recorded:
                thresholds[kind], origins[kind] = recorded[kind], "the rejects' reasons"
            else:
                thresholds[kind], origins[kind] = None, ""
        if opts.scored:
            listed += [("scored", p) for p in opts.scored]
            sections += _score_sections(opts, thresholds, origins)
        if drops:
            sections.append(_drops_section(drops))
        if opts.pairs:
            listed += [("pairs", p) for p in opts.pairs]
            sections += _pair_sections(opts)
        if opts.train:
            runs = [inputs.read_train(arg) for arg in opts.train]
            listed += [("training", run.source) for run in runs]
            sections.append(_training_section(runs))
        if opts.amber:
            results = inputs.read_amber(opts.amber)
            listed += [(f"AMBER ({r.label})", r.path) for r in results]
            sections.append(_amber_section(results))
        zs = []
        if opts.zeroshot:
            zs = inputs.read_zeroshot(opts.zeroshot)
            listed += [(f"zero-shot ({r.label})", r.path) for r in zs]
            sections.append(_zeroshot_section(zs))
        pope = inputs.read_benchmark(opts.pope, "pope", "eval-pope")
        chair = inputs.read_benchmark(opts.chair, "chair", "eval-chair")
        listed += [(f"POPE ({r.label})", r.path) for r in pope] + [
            (f"CHAIR ({r.label})", r.path) for r in chair
        ]
        if opts.compare or pope or chair:
            amber = inputs.read_amber(opts.amber) if opts.amber else []
            if not (amber or pope or chair or zs):
                raise InputError("--compare needs results: --amber, --pope, --chair or --zeroshot")
            table_data = data.benchmark_table(
                [(r.label, r.result) for r in amber],
                [(r.label, r.result) for r in pope],
                [(r.label, r.result) for r in chair],
                [(r.label, r.lines) for r in zs],
            )
            sections.append(_benchmarks_section(table_data, [*pope, *chair]))
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    page = render(
        opts.title,
        f"CLIP-DPO run report · {stamp}",
        [(what, inputs.shown_path(path)) for what, path in listed],
        sections,
        f"Written by clipdpo {__version__} (clipdpo report). Self-contained: figures are embedded; "
        "nothing is loaded from the network.",
    )
    return Report(page, sections)


SCORE_KINDS = (
    ("captions", "Caption scores", "caption", "captions (records that are not kind qa)"),
    ("questions", "Question scores", "question", "questions (kind qa)"),
    ("answers", "Answer scores", "answer", "QA answers (the synthetic caption's score, kind qa)"),
)


def _score_sections(
    opts: ReportSettings, thresholds: dict[str, float | None], origins: dict[str, str]
) -> list[Section]:
    from clipdpo_cli.report.figures import score_figure

    hists = data.score_histograms(
        inputs.records(opts.scored, opts.quiet), opts.score_field, opts.question_score_field, thresholds
    )
    _log(opts, f"read {hists.records:,} scored records from {', '.join(opts.scored)}")
    if not (hists.captions.total or hists.questions.total or hists.answers.total):
        raise InputError(
            f"{', '.join(opts.scored)}: no record has a numeric {opts.score_field} or "
            f"{opts.question_score_field} (run clipdpo score first, or name the field with --score-field)"
        )
    out = []
    for attr, title, kind, what in SCORE_KINDS:
        hist: data.ScoreHistogram = getattr(hists, attr)
        if not hist.total:
            continue
        threshold = hist.threshold
        if threshold is not None:
            where = f"threshold {threshold:g} from {origins[kind]}"
        else:
            where = f"no threshold drawn: give {THRESHOLD_OPTIONS[kind]} or the filter's --rejects file"
        intro = esc(
            f"{title[:-1]} distribution of the {what}, field {hist.field}, per image category "
            f"(the paper's Fig. 4); {where}. Each category's curve is its share of that category's records."
        )
        fig = _figure(
            f"scores-{attr}",
            f"{title} per category",
            lambda h=hist, t=title: score_figure(
                h, f"{t} per image category", f"{h.field} (100 × cosine)", opts.bin_width
            ),
        )
        rows = []
        for category, n in hist.counts().items():
            row: list[object] = [category, f"{n:,}", f"{hist.mean(category):.2f}"]
            if threshold is not None:
                below = hist.below[category]
                row += [f"{below:,}", f"{100.0 * below / n:.1f}%"]
            rows.append(row)
        header = ["category", "records", "mean score"]
        if threshold is not None:
            header += [f"below {threshold:g}", "share below"]
        body = [table(header, rows)]
        if hist.missing:
            body.append(note(f"{hist.missing:,} {attr} without a numeric {hist.field} are not shown."))
        out.append(Section(f"scores-{attr}", title, intro, [fig], body))
    return out


def _drops_section(drops: list[tuple[str, int]]) -> Section:
    from clipdpo_cli.report.figures import drops_figure

    fig = _figure("drops", "Records dropped per rule", lambda: drops_figure(drops))
    total = sum(n for _, n in drops)
    rows = [[reason, f"{n:,}", f"{100.0 * n / total:.1f}%"] for reason, n in drops]
    intro = esc(
        "Why records were dropped: the reject_reason of each record in the --rejects files "
        "(filter, pair and ask write them)."
    )
    return Section(
        "drops", "Dropped records", intro, [fig], [table(["rule (reject_reason)", "records", "share"], rows)]
    )


def _pair_sections(opts: ReportSettings) -> list[Section]:
    from clipdpo_cli.report.figures import pairs_figure

    picker = data.ExamplePicker(opts.examples)

    def stream() -> Any:
        for pair in inputs.records(opts.pairs, opts.quiet):
            picker.add(pair)
            yield pair

    stats = data.pair_stats(stream())
    _log(opts, f"read {stats.total:,} pairs from {', '.join(opts.pairs)}")
    if not stats.with_texts:
        raise InputError(f"{', '.join(opts.pairs)}: no pair records (with chosen and rejected texts)")
    kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(stats.kinds.items()))
    images = len(stats.per_image)
    intro = esc(
        f"{stats.total:,} pairs ({kinds}) of {images:,} images. Margins and lengths are those of the "
        "caption pairs (QA pairs have no rejected score); length counts words as the filter does."
    )
    sections = [
        Section(
            "pairs",
            "Pairs",
            intro,
            [_figure("pairs", "Pair margins, lengths and pairs per image", lambda: pairs_figure(stats))],
        )
    ]
    rows = []
    if stats.margins:
        m = sorted(stats.margins)
        rows.append(
            ["margin (points)", f"{m[0]:.2f}", f"{_median(m):.2f}", f"{sum(m) / len(m):.2f}", f"{m[-1]:.2f}"]
        )
    for name, words in (("chosen words", stats.chosen_words), ("rejected words", stats.rejected_words)):
        if words:
            w = sorted(words)
            rows.append([name, f"{w[0]}", f"{_median(w):g}", f"{sum(w) / len(w):.1f}", f"{w[-1]}"])
    if rows:
        sections[0].body.append(table(["caption pairs", "min", "median", "mean", "max"], rows))
    examples = picker.picked()
    if examples:
        cards = "".join(_card(pair, opts.image_root) for pair in examples)
        intro = esc(
            "The caption pairs of largest margin (one per image) and the first QA pairs, with their images."
        )
        sections.append(
            Section("examples", "Example pairs", intro, [], [f'<div class="cards">{cards}</div>'])
        )
    return sections


def _median(sorted_values: list[Any]) -> float:
    n = len(sorted_values)
    mid = n // 2
    return float(sorted_values[mid]) if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2


def thumbnail(path: str, root: str | None, size: int = 320) -> bytes:
    """A JPEG thumbnail (at most size x size) through the project's one image decoder."""
    from clipdpo_cli.io.images import load_image

    img = load_image(path, root)
    img.thumbnail((size, size))
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _card(pair: dict[str, Any], root: str | None) -> str:
    image = str(pair.get("image"))
    try:
        src = data_url(thumbnail(image, root), "image/jpeg")
        picture = f'<img src="{src}" alt="{esc(os.path.basename(image))}">'
    except BadRecord as exc:
        # the short reason and the file name fit the thumbnail's box; the tooltip names the path tried
        # (relative to the current folder, or its name: no absolute local path in a page that is shared)
        note = f"{exc.reason}: {os.path.basename(image)}"
        tried = inputs.shown_path(resolve_image(image, root))
        picture = f'<div class="noimg" title="{esc(f"{exc.reason}: {tried}")}">{esc(note)}</div>'
    kind = pair.get("kind") or "caption"
    scores = []
    for key, name in (("chosen_score", "chosen"), ("rejected_score", "rejected"), ("margin", "margin")):
        value = pair.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            scores.append(f"{name} {value:.2f}")
    meta = f"{kind} pair · {os.path.basename(image)}" + (f" · {', '.join(scores)}" if scores else "")
    return (
        f'<div class="card">{picture}<div class="txt"><div class="meta">{esc(meta)}</div>'
        f'<div class="prompt">{esc(pair.get("prompt") or "")}</div>'
        f'<p><span class="tag c">chosen</span>{esc(pair.get("chosen", ""))}</p>'
        f'<p><span class="tag r">rejected</span>{esc(pair.get("rejected", ""))}</p></div></div>'
    )


def _training_section(runs: list[inputs.TrainRun]) -> Section:
    from clipdpo_cli.report.figures import training_figure

    series = [(run, data.training_series(run.history)) for run in runs]
    fig = _figure(
        "training", "Training loss, reward margin and reward accuracy", lambda: training_figure(series)
    )
    rows = []
    for run, s in series:
        row: list[object] = [run.label, run.summary.get("pairs", "–"), run.summary.get("steps", "–")]
        for key in data.TRAIN_METRICS:
            row += [f"{s[key][1][0]:.4g}", f"{s[key][1][-1]:.4g}"] if key in s else ["–", "–"]
        rows.append(row)
    header = [
        "run",
        "pairs",
        "steps",
        "first loss",
        "last loss",
        "first margin",
        "last margin",
        "first accuracy",
        "last accuracy",
    ]
    body = [table(header, rows)]
    few = [run.label for run, s in series if sum(len(v[0]) for v in s.values()) <= 3]
    if few:
        body.append(
            note(
                f"{', '.join(few)}: few logged points; train with a smaller --logging-steps "
                "for a finer curve."
            )
        )
    intro = esc(
        "From each run's log history (train_summary.json, else trainer_state.json): TRL's DPO "
        "metrics at every logging step. Reward accuracy is the share of pairs whose chosen answer "
        "gets the higher implicit reward."
    )
    return Section("training", "Training", intro, [fig], body)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _best(
    rows: list[dict[str, float | None]], columns: tuple[str, ...], offset: int
) -> list[tuple[int, int]]:
    """(row, column) of each column's best value (lowest for CHAIR, Hal, Cog) when rows can be compared."""
    marked = []
    if len(rows) < 2:
        return marked
    for c, key in enumerate(columns):
        values = [(row[key], r) for r, row in enumerate(rows) if row[key] is not None]
        if len({v for v, _ in values}) > 1:
            pick = min(values) if key in data.LOWER_IS_BETTER else max(values, key=lambda t: (t[0], -t[1]))
            marked.append((pick[1], c + offset))
    return marked


AMBER_TYPES = ("existence", "attribute", "state", "number", "action", "relation")


def _amber_section(results: list[inputs.AmberResult]) -> Section:
    from clipdpo_cli.report.figures import amber_figure

    rows = [data.amber_row(r.result) for r in results]
    fig = _figure("amber", "AMBER metrics per model", lambda: amber_figure(results, rows))
    table_rows = [
        [r.label, *(_fmt(row[k]) for k in data.AMBER_COLUMNS)] for r, row in zip(results, rows, strict=True)
    ]
    header = ["model", "CHAIR ↓", "Cover ↑", "Hal ↓", "Cog ↓", "Acc. ↑", "P. ↑", "R. ↑", "F1 ↑", "AMBER ↑"]
    body = [
        table(
            header,
            table_rows,
            highlight=_best(rows, data.AMBER_COLUMNS, 1),
            caption="Columns as in the paper's Table 2; best value per column in bold.",
        )
    ]
    per_type = [[r.label, *(_fmt((r.result.get(t) or {}).get("F1")) for t in AMBER_TYPES)] for r in results]
    if any(cell != "–" for row in per_type for cell in row[1:]):
        body.append(
            table(
                ["model", *(f"{t} F1" for t in AMBER_TYPES)],
                per_type,
                caption="Discriminative F1 per question type.",
            )
        )
    for r in results:
        if r.result.get("complete") is False:
            counts = r.result.get("responses") or {}
            text = (
                f"{r.label}: partial result, {counts.get('scored', '?')} of {counts.get('expected', '?')} "
                "responses scored; its figures cover a subset."
            )
            body.append(f'<p class="warn">{esc(text)}</p>')
    intro = esc(
        "eval-amber results side by side (generative CHAIR, Cover, Hal, Cog; discriminative F1; "
        "AMBER score = (100 − CHAIR + F1) / 2). Arrows say which way is better."
    )
    return Section("amber", "AMBER", intro, [fig], body)


def _zeroshot_section(results: list[inputs.ZeroShotResult]) -> Section:
    from clipdpo_cli.report.figures import zeroshot_figure

    zs = data.zeroshot_table([(r.label, r.lines) for r in results])
    if not zs.rows:
        raise InputError(f"{results[0].path}: no caption or clip results in this eval-zeroshot output")
    fig = _figure("zeroshot", "Zero-shot top-1 accuracy per dataset", lambda: zeroshot_figure(zs))
    rows = [[label, *(_fmt(v) for v in cells)] for label, cells in zs.rows]
    body = [table(["method", *zs.columns], rows, caption="Top-1 accuracy (%), as the paper's Table 3.")]
    intro = esc(
        "Caption-based zero-shot classification (eval-zeroshot): the LVLM's caption of each image, matched "
        "to class prototypes by the text encoder; the CLIP baseline classifies the image itself."
    )
    return Section("zeroshot", "Zero-shot classification", intro, [fig], body)


def _benchmarks_section(bt: data.BenchmarkTable, partial_from: list[inputs.BenchmarkResult]) -> Section:
    from clipdpo_cli.report.figures import benchmarks_figure

    fig = _figure("benchmarks", "Every checkpoint on every benchmark", lambda: benchmarks_figure(bt))
    rows = [[label, *(_fmt(v) for v in cells)] for label, cells in bt.rows]
    keyed = [{c.title: v for c, v in zip(bt.columns, cells, strict=True)} for _, cells in bt.rows]
    best = []
    if len(rows) > 1:
        for c, column in enumerate(bt.columns):
            values = [(row[column.title], r) for r, row in enumerate(keyed) if row[column.title] is not None]
            if len({v for v, _ in values}) > 1:
                pick = min(values) if column.lower_is_better else max(values, key=lambda t: (t[0], -t[1]))
                best.append((pick[1], c + 1))
    body = [
        table(
            ["checkpoint", *(c.title for c in bt.columns)],
            rows,
            highlight=best,
            caption="Percent. AMBER: generative CHAIR and Hal, discriminative F1, AMBER score; POPE: "
            "accuracy and F1, mean over the sets scored; CHAIR: CHAIRs, CHAIRi and object recall "
            "(eval-chair); zero-shot: the caption method's average top-1. Best per column in bold.",
        )
    ]
    for r in partial_from:
        if r.result.get("complete") is False:
            counts = r.result.get("responses") or {}
            text = (
                f"{r.label}: partial POPE result, {counts.get('scored', '?')} of "
                f"{counts.get('expected', '?')} questions scored."
            )
            body.append(f'<p class="warn">{esc(text)}</p>')
    intro = esc(
        "One row per checkpoint (results joined by their label: LABEL=FILE, else the model's name), "
        "one column per benchmark figure. Arrows say which way is better."
    )
    return Section("benchmarks", "Checkpoints x benchmarks", intro, [fig], body)


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
