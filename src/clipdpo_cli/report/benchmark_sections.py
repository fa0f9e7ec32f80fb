"""The report's sections of benchmark results: AMBER, zero-shot classification, and checkpoints x
benchmarks (AMBER, POPE, CHAIR, zero-shot side by side)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.report import benchmarks, inputs
from clipdpo_cli.report.page import Section, esc, table
from clipdpo_cli.report.sections import figure


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def best_cells(
    rows: list[dict[str, float | None]], columns: Sequence[str], lower: Collection[str], offset: int
) -> list[tuple[int, int]]:
    """(row, column + offset) of each column's best value (the lowest in a column of `lower`, else the
    highest; the first row of a tie) when there are rows to compare and the column's values differ."""
    marked = []
    if len(rows) < 2:
        return marked
    for c, key in enumerate(columns):
        values = [(row[key], r) for r, row in enumerate(rows) if row[key] is not None]
        if len({v for v, _ in values}) > 1:
            pick = min(values) if key in lower else max(values, key=lambda t: (t[0], -t[1]))
            marked.append((pick[1], c + offset))
    return marked


AMBER_TYPES = ("existence", "attribute", "state", "number", "action", "relation")


def amber_section(results: list[inputs.AmberResult]) -> Section:
    from clipdpo_cli.report.figures import amber_figure

    rows = [benchmarks.amber_row(r.result) for r in results]
    fig = figure("amber", "AMBER metrics per model", lambda: amber_figure(results, rows))
    columns = benchmarks.AMBER_COLUMNS
    table_rows = [[r.label, *(fmt(row[k]) for k in columns)] for r, row in zip(results, rows, strict=True)]
    header = ["model", "CHAIR ↓", "Cover ↑", "Hal ↓", "Cog ↓", "Acc. ↑", "P. ↑", "R. ↑", "F1 ↑", "AMBER ↑"]
    body = [
        table(
            header,
            table_rows,
            highlight=best_cells(rows, columns, benchmarks.LOWER_IS_BETTER, 1),
            caption="Columns as in the paper's Table 2; best value per column in bold.",
        )
    ]
    per_type = [[r.label, *(fmt((r.result.get(t) or {}).get("F1")) for t in AMBER_TYPES)] for r in results]
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


def zeroshot_section(results: list[inputs.ZeroShotResult]) -> Section:
    from clipdpo_cli.report.figures import zeroshot_figure

    zs = benchmarks.zeroshot_table([(r.label, r.lines) for r in results])
    if not zs.rows:
        raise InputError(f"{results[0].path}: no caption or clip results in this eval-zeroshot output")
    fig = figure("zeroshot", "Zero-shot top-1 accuracy per dataset", lambda: zeroshot_figure(zs))
    rows = [[label, *(fmt(v) for v in cells)] for label, cells in zs.rows]
    body = [table(["method", *zs.columns], rows, caption="Top-1 accuracy (%), as the paper's Table 3.")]
    intro = esc(
        "Caption-based zero-shot classification (eval-zeroshot): the LVLM's caption of each image, matched "
        "to class prototypes by the text encoder; the CLIP baseline classifies the image itself."
    )
    return Section("zeroshot", "Zero-shot classification", intro, [fig], body)


def benchmarks_section(bt: benchmarks.BenchmarkTable, partial_from: list[inputs.BenchmarkResult]) -> Section:
    from clipdpo_cli.report.figures import benchmarks_figure

    fig = figure("benchmarks", "Every checkpoint on every benchmark", lambda: benchmarks_figure(bt))
    rows = [[label, *(fmt(v) for v in cells)] for label, cells in bt.rows]
    keyed = [{c.title: v for c, v in zip(bt.columns, cells, strict=True)} for _, cells in bt.rows]
    lower = {c.title for c in bt.columns if c.lower_is_better}
    best = best_cells(keyed, [c.title for c in bt.columns], lower, 1)
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
