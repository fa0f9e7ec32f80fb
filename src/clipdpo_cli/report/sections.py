"""The report's sections of the pipeline's files: score distributions, dropped records, pairs and example
cards, training curves. Each reads its inputs, computes its data (data.py), draws (figures.py) and returns a
page Section."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from clipdpo_cli.io.errors import BadRecord, InputError
from clipdpo_cli.io.images import resolve_image
from clipdpo_cli.io.log import info
from clipdpo_cli.report import data, inputs
from clipdpo_cli.report.page import Figure, Section, data_url, esc, note, table
from clipdpo_cli.report.settings import THRESHOLD_OPTIONS

if TYPE_CHECKING:
    from clipdpo_cli.report.settings import ReportSettings

DPI = 150


def log(opts: ReportSettings, message: str) -> None:
    """`clipdpo report: message` on stderr (io/log.py), unless --quiet."""
    info("report", message, opts.quiet)


def figure(name: str, alt: str, draw: Callable[[], Any]) -> Figure:
    """A page figure of what `draw` returns (a matplotlib Figure), as PNG at DPI, shown at its own width."""
    from clipdpo_cli.report.figures import to_png

    fig = draw()
    width, _ = fig.get_size_inches()
    return Figure(name, to_png(fig, DPI), alt, int(round(width * 96)))


SCORE_KINDS = (
    ("captions", "Caption scores", "caption", "captions (records that are not kind qa)"),
    ("questions", "Question scores", "question", "questions (kind qa)"),
    ("answers", "Answer scores", "answer", "QA answers (the synthetic caption's score, kind qa)"),
)


def score_sections(
    opts: ReportSettings, thresholds: dict[str, float | None], origins: dict[str, str]
) -> list[Section]:
    from clipdpo_cli.report.figures import score_figure

    hists = data.score_histograms(
        inputs.records(opts.scored, opts.quiet), opts.score_field, opts.question_score_field, thresholds
    )
    log(opts, f"read {hists.records:,} scored records from {', '.join(opts.scored)}")
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
        fig = figure(
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


def drops_section(drops: list[tuple[str, int]]) -> Section:
    from clipdpo_cli.report.figures import drops_figure

    fig = figure("drops", "Records dropped per rule", lambda: drops_figure(drops))
    total = sum(n for _, n in drops)
    rows = [[reason, f"{n:,}", f"{100.0 * n / total:.1f}%"] for reason, n in drops]
    intro = esc(
        "Why records were dropped: the reject_reason of each record in the --rejects files "
        "(filter, pair and ask write them)."
    )
    return Section(
        "drops", "Dropped records", intro, [fig], [table(["rule (reject_reason)", "records", "share"], rows)]
    )


def pair_sections(opts: ReportSettings) -> list[Section]:
    from clipdpo_cli.report.figures import pairs_figure

    picker = data.ExamplePicker(opts.examples)

    def stream() -> Any:
        for pair in inputs.records(opts.pairs, opts.quiet):
            picker.add(pair)
            yield pair

    stats = data.pair_stats(stream())
    log(opts, f"read {stats.total:,} pairs from {', '.join(opts.pairs)}")
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
            [figure("pairs", "Pair margins, lengths and pairs per image", lambda: pairs_figure(stats))],
        )
    ]
    rows = []
    if stats.margins:
        m = sorted(stats.margins)
        rows.append(
            ["margin (points)", f"{m[0]:.2f}", f"{median(m):.2f}", f"{sum(m) / len(m):.2f}", f"{m[-1]:.2f}"]
        )
    for name, words in (("chosen words", stats.chosen_words), ("rejected words", stats.rejected_words)):
        if words:
            w = sorted(words)
            rows.append([name, f"{w[0]}", f"{median(w):g}", f"{sum(w) / len(w):.1f}", f"{w[-1]}"])
    if rows:
        sections[0].body.append(table(["caption pairs", "min", "median", "mean", "max"], rows))
    examples = picker.picked()
    if examples:
        cards = "".join(card(pair, opts.image_root) for pair in examples)
        intro = esc(
            "The caption pairs of largest margin (one per image) and the first QA pairs, with their images."
        )
        sections.append(
            Section("examples", "Example pairs", intro, [], [f'<div class="cards">{cards}</div>'])
        )
    return sections


def median(sorted_values: list[Any]) -> float:
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


def card(pair: dict[str, Any], root: str | None) -> str:
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


def training_section(runs: list[inputs.TrainRun]) -> Section:
    from clipdpo_cli.report.figures import training_figure

    series = [(run, data.training_series(run.history)) for run in runs]
    fig = figure(
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
