"""The report's figures, drawn with matplotlib's object API on its Agg canvas (no pyplot, no display).

matplotlib is an optional dependency (`pip install 'clipdpo-cli[report]'`): it is imported here only,
when a figure is drawn, and its absence is one clear line.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from clipdpo_cli.report.benchmarks import AMBER_FIGURE, LOWER_IS_BETTER, BenchmarkTable, ZeroShotTable
from clipdpo_cli.report.data import TRAIN_METRICS, PairStats, ScoreHistogram

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from clipdpo_cli.report.inputs import AmberResult, TrainRun

# Okabe-Ito: distinguishable with the common colour-vision deficiencies
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#444444")
CATEGORY_COLORS = {"text": "#CC79A7", "people": "#E69F00", "objects": "#0072B2", "scenes": "#009E73"}
THRESHOLD_COLOR = "#C0392B"
WIDTH = 10.0  # inches; the page shows figures at 96 px per inch


STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e5e5",
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "legend.frameon": True,  # legends inside small panels sit over bars: a light box keeps them legible
    "legend.framealpha": 0.92,
    "legend.edgecolor": "#d9d9d9",
    "legend.fancybox": False,
    "legend.fontsize": 9,
    "text.parse_math": False,  # categories, reject reasons, model names are text: `$` is a dollar sign
}


@contextmanager
def figure_style() -> Iterator[None]:
    """The report's matplotlib settings, for drawing and saving; a missing matplotlib is one line."""
    from clipdpo_cli.io.extras import require

    with require("matplotlib").rc_context(STYLE):
        yield


def new_figure(height: float, ncols: int = 1, width: float = WIDTH) -> tuple[Figure, list[Any]]:
    """A Figure with `ncols` axes in a row (call inside figure_style)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]


def to_png(fig: Figure, dpi: int = 144) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def _integer_axis(axis: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def score_figure(hist: ScoreHistogram, title: str, xlabel: str, width: float | None = None) -> Figure:
    """Fig. 4 of the paper: the score distribution per image category, the filter's threshold drawn."""
    fig, (ax,) = new_figure(3.6)
    edges, counts = hist.binned(width)
    sizes = hist.counts()
    for i, (category, values) in enumerate(counts.items()):
        n = sizes[category]
        share = [100.0 * v / n for v in values]
        color = CATEGORY_COLORS.get(category, _color(i))
        label = f"{category} (n={n:,}, mean {hist.mean(category):.1f})"
        ax.stairs(share, edges, fill=True, alpha=0.18, color=color)
        ax.stairs(share, edges, linewidth=1.8, color=color, label=label)
    if hist.threshold is not None:
        below = sum(hist.below.values())
        ax.axvline(
            hist.threshold,
            color=THRESHOLD_COLOR,
            linestyle="--",
            linewidth=1.6,
            label=f"threshold {hist.threshold:g}: {below:,} of {hist.total:,} below "
            f"({100.0 * below / max(hist.total, 1):.1f}%)",
        )
        lo, hi = ax.get_xlim()
        ax.set_xlim(min(lo, hist.threshold - (hi - lo) * 0.03), max(hi, hist.threshold + (hi - lo) * 0.03))
    ax.set_title(title, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"share of the category's records (%)\nper {edges[1] - edges[0]:g}-point bin")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def drops_figure(drops: Sequence[tuple[str, int]]) -> Figure:
    """Records dropped per rule (reject_reason), most frequent on top."""
    fig, (ax,) = new_figure(1.2 + 0.42 * len(drops))
    reasons = [r for r, _ in drops][::-1]
    counts = [n for _, n in drops][::-1]
    total = sum(counts)
    bars = ax.barh(reasons, counts, color=PALETTE[0], height=0.6)
    ax.bar_label(bars, labels=[f" {n:,} ({100.0 * n / total:.1f}%)" for n in counts], fontsize=9)
    ax.set_xlim(0, max(counts) * 1.22)
    _integer_axis(ax.xaxis)
    ax.set_xlabel("records dropped")
    ax.set_title(f"Records dropped per rule ({total:,} in all)", loc="left")
    ax.grid(axis="y", visible=False)
    return fig


def pairs_figure(stats: PairStats) -> Figure:
    """Caption-pair margins, chosen vs rejected caption length, and pairs per image."""
    fig, (margins, lengths, per_image) = new_figure(3.4, ncols=3)
    if stats.margins:
        margins.hist(
            stats.margins,
            bins=min(40, max(5, len(stats.margins) // 3)),
            color=PALETTE[0],
            edgecolor="white",
            linewidth=0.5,
        )
        mean = sum(stats.margins) / len(stats.margins)
        margins.axvline(mean, color=THRESHOLD_COLOR, linestyle="--", linewidth=1.4, label=f"mean {mean:.2f}")
        margins.set_ylim(0, margins.get_ylim()[1] * 1.25)  # room for the legend above the bars
        margins.legend(loc="upper right")
        _integer_axis(margins.yaxis)
    else:
        _empty(margins, "no caption pairs with a margin")
    margins.set_title("Score margin of caption pairs", loc="left")
    margins.set_xlabel("chosen − rejected score (points)")
    margins.set_ylabel("pairs")
    if stats.chosen_words:
        low = min(min(stats.chosen_words), min(stats.rejected_words))
        top = max(max(stats.chosen_words), max(stats.rejected_words))
        bins = range(low, top + 2, max(1, (top + 1 - low) // 30))
        for words, name, color in (
            (stats.chosen_words, "chosen", PALETTE[2]),
            (stats.rejected_words, "rejected", PALETTE[5]),
        ):
            mean = sum(words) / len(words)
            lengths.hist(words, bins=bins, histtype="stepfilled", alpha=0.25, color=color)
            lengths.hist(
                words,
                bins=bins,
                histtype="step",
                linewidth=1.8,
                color=color,
                label=f"{name} (mean {mean:.1f})",
            )
        lengths.set_ylim(0, lengths.get_ylim()[1] * 1.3)
        lengths.legend(loc="upper right")
        _integer_axis(lengths.xaxis)
        _integer_axis(lengths.yaxis)
    else:
        _empty(lengths, "no caption pairs")
    lengths.set_title("Caption length, chosen vs rejected", loc="left")
    lengths.set_xlabel("words")
    lengths.set_ylabel("pairs")
    distribution = stats.pairs_per_image()
    bars = per_image.bar(
        [str(k) for k in distribution], list(distribution.values()), color=PALETTE[4], width=0.6
    )
    per_image.bar_label(bars, labels=[f"{v:,}" for v in distribution.values()], fontsize=9)
    per_image.set_title("Pairs per image", loc="left")
    per_image.set_xlabel("pairs of the image (caption + QA)")
    per_image.set_ylabel("images")
    per_image.grid(axis="x", visible=False)
    per_image.margins(y=0.15)
    _integer_axis(per_image.yaxis)
    return fig


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#888888")
    ax.set_xticks([])
    ax.set_yticks([])


TRAIN_TITLES = {
    "loss": ("Training loss", "loss"),
    "rewards/margins": ("Reward margin", "chosen − rejected reward"),
    "rewards/accuracies": ("Reward accuracy", "pairs with chosen reward > rejected"),
}


def training_figure(runs: Sequence[tuple[TrainRun, dict[str, tuple[list[float], list[float]]]]]) -> Figure:
    """Loss, reward margin and reward accuracy over optimizer steps, one line per run."""
    fig, axes = new_figure(3.3, ncols=3)
    for ax, key in zip(axes, TRAIN_METRICS, strict=True):
        title, ylabel = TRAIN_TITLES[key]
        drawn = False
        for i, (run, series) in enumerate(runs):
            if key not in series:
                continue
            steps, values = series[key]
            ax.plot(
                steps,
                values,
                color=_color(i),
                linewidth=1.8,
                label=run.label,
                marker="o" if len(steps) <= 30 else None,
                markersize=4,
            )
            drawn = True
        if not drawn:
            _empty(ax, f"'{key}' was not logged")
        ax.set_title(title, loc="left")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(ylabel)
        if drawn:
            ax.set_xlim(left=0)
            _integer_axis(ax.xaxis)
        if key == "rewards/accuracies" and drawn:
            ax.set_ylim(-0.03, 1.03)
        if drawn and len(runs) > 1:
            ax.legend()
    return fig


def amber_figure(results: Sequence[AmberResult], rows: Sequence[dict[str, float | None]]) -> Figure:
    """AMBER's Table-2 figures side by side, one bar per model, one panel per metric."""
    # a metric no model has (F1 and the AMBER score need the discriminative task) gets no empty panel
    keys = [key for key in AMBER_FIGURE if any(row[key] is not None for row in rows)] or list(AMBER_FIGURE)
    fig, axes = new_figure(3.2, ncols=len(keys), width=min(WIDTH, 2.6 * len(keys) + 1.0))
    for ax, key in zip(axes, keys, strict=True):
        values = [row[key] for row in rows]
        xs = list(range(len(rows)))
        bars = ax.bar(xs, [v or 0.0 for v in values], color=[_color(i) for i in xs], width=0.7)
        ax.bar_label(bars, labels=["–" if v is None else f"{v:.1f}" for v in values], fontsize=8)
        arrow = "↓" if key in LOWER_IS_BETTER else "↑"
        ax.set_title(f"{key} {arrow}", loc="center")
        ax.set_xticks([])
        ax.set_ylim(0, max([v for v in values if v is not None] + [5.0]) * 1.18)
        ax.grid(axis="x", visible=False)
    axes[0].set_ylabel("%")
    handles = [axes[0].patches[i] for i in range(len(rows))]
    fig.legend(handles, [r.label for r in results], loc="outside lower center", ncols=min(len(rows), 4))
    return fig


def zeroshot_figure(table: ZeroShotTable) -> Figure:
    """Zero-shot top-1 per dataset, one bar per method."""
    n_rows, n_cols = len(table.rows), len(table.columns)
    fig, (ax,) = new_figure(3.6 + 0.25 * n_rows, width=min(WIDTH, 5.0 + n_cols * (0.3 + 0.45 * n_rows)))
    width = 0.8 / max(n_rows, 1)
    for i, (label, cells) in enumerate(table.rows):
        xs = [c + (i - (n_rows - 1) / 2) * width for c in range(n_cols)]
        bars = ax.bar(xs, [v or 0.0 for v in cells], width=width * 0.95, color=_color(i), label=label)
        ax.bar_label(bars, labels=["–" if v is None else f"{v:.1f}" for v in cells], fontsize=8)
    ax.set_xticks(range(n_cols), table.columns)
    ax.set_ylim(0, 105)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Zero-shot classification", loc="left")
    ax.grid(axis="x", visible=False)
    fig.legend(loc="outside lower center", ncols=1 if n_cols * n_rows < 8 else 2)
    return fig


def benchmarks_figure(table: BenchmarkTable) -> Figure:
    """Checkpoints x benchmarks: one panel per metric, one bar per checkpoint (its label in the legend)."""
    n = len(table.columns)
    ncols = min(n, 5)
    nrows = (n + ncols - 1) // ncols
    fig, _ = new_figure(2.9 * nrows, ncols=0, width=min(WIDTH, 2.3 * ncols + 1.0))
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    xs = list(range(len(table.rows)))
    for c, (ax, column) in enumerate(zip(axes, table.columns, strict=False)):
        values = [cells[c] for _, cells in table.rows]
        bars = ax.bar(xs, [v or 0.0 for v in values], color=[_color(i) for i in xs], width=0.7)
        ax.bar_label(bars, labels=["–" if v is None else f"{v:.1f}" for v in values], fontsize=8)
        ax.set_title(column.title, loc="center", fontsize=9)
        ax.set_xticks([])
        ax.set_ylim(0, max([v for v in values if v is not None] + [5.0]) * 1.18)
        ax.grid(axis="x", visible=False)
    handles = [axes[0].patches[i] for i in xs]
    fig.legend(handles, [label for label, _ in table.rows], loc="outside lower center", ncols=min(len(xs), 4))
    return fig
