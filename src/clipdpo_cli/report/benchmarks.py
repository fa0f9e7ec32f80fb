"""The benchmark results' tables, computed from the eval commands' outputs: AMBER's Table-2 row, zero-shot's
Table 3, and checkpoints x benchmarks (AMBER, POPE, CHAIR, zero-shot). Pure functions, no plotting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.report.data import is_number

AMBER_COLUMNS = ("CHAIR", "Cover", "Hal", "Cog", "Accuracy", "Precision", "Recall", "F1", "AMBER")
AMBER_FIGURE = ("CHAIR", "Cover", "Hal", "Cog", "F1", "AMBER")
LOWER_IS_BETTER = {"CHAIR", "Hal", "Cog"}


def amber_row(result: dict[str, Any]) -> dict[str, float | None]:
    """The Table-2 figures of one `eval-amber` result (None where its task did not report them)."""
    generative = result.get("generative") or {}
    discriminative = result.get("discriminative") or {}
    row: dict[str, float | None] = {}
    for key in AMBER_COLUMNS:
        source = generative if key in ("CHAIR", "Cover", "Hal", "Cog") else discriminative
        value = result.get("AMBER") if key == "AMBER" else source.get(key)
        row[key] = float(value) if is_number(value) else None
    return row


@dataclass
class ZeroShotTable:
    """Zero-shot top-1 (%) like the paper's Table 3: rows are methods, columns datasets (+ Avg)."""

    columns: list[str]
    rows: list[tuple[str, list[float | None]]]


def zeroshot_table(
    results: Sequence[tuple[str, Sequence[dict[str, Any]]]], metric: str = "top1"
) -> ZeroShotTable:
    """One caption row per labelled `eval-zeroshot` output, plus each distinct CLIP baseline row
    (a baseline repeated across files with the same text encoder and values is shown once)."""
    columns: list[str] = []
    keyed: dict[str, str] = {}  # dataset key -> column title
    for _, lines in results:
        for line in lines:
            key = str(line.get("dataset"))
            if key not in keyed:
                keyed[key] = str(line.get("title") or key)
    keys = [k for k in keyed if k != "average"] + (["average"] if "average" in keyed else [])
    columns = [keyed[k] for k in keys]

    def cells(lines: Sequence[dict[str, Any]], method: str) -> list[float | None]:
        by_key = {str(line.get("dataset")): line for line in lines}
        out: list[float | None] = []
        for k in keys:
            value = (by_key.get(k, {}).get(method) or {}).get(metric)
            out.append(float(value) if is_number(value) else None)
        return out

    rows: list[tuple[str, list[float | None]]] = []
    baselines: list[tuple[str, list[float | None]]] = []
    for label, lines in results:
        if any(line.get("caption") for line in lines):
            rows.append((f"{label} (caption → text)", cells(lines, "caption")))
        if any(line.get("clip") for line in lines):
            encoder = next((line.get("text_encoder") for line in lines if line.get("text_encoder")), "CLIP")
            baseline = (f"{encoder} (image, CLIP baseline)", cells(lines, "clip"))
            if baseline not in baselines:
                baselines.append(baseline)
    return ZeroShotTable(columns, rows + baselines)


@dataclass(frozen=True)
class BenchmarkColumn:
    benchmark: str  # AMBER, POPE, CHAIR, zero-shot
    metric: str
    lower_is_better: bool = False

    @property
    def title(self) -> str:
        return f"{self.benchmark} {self.metric} {'↓' if self.lower_is_better else '↑'}"


@dataclass
class BenchmarkTable:
    """Checkpoints x benchmarks: one row per label (first seen first), one column per metric, in percent;
    None where a checkpoint has no result of that benchmark."""

    columns: list[BenchmarkColumn]
    rows: list[tuple[str, list[float | None]]]


# (column name, amber_row key, lower is better)
AMBER_COMPARED = (
    ("CHAIR", "CHAIR", True),
    ("Hal", "Hal", True),
    ("F1", "F1", False),
    ("score", "AMBER", False),
)


def _pct(value: Any) -> float | None:
    return 100 * float(value) if is_number(value) else None


def pope_cells(result: dict[str, Any]) -> dict[str, float | None]:
    """POPE accuracy and F1 (%): the mean over the sets scored (one set: its own)."""
    summary = result.get("mean") or next(iter((result.get("sets") or {}).values()), {})
    return {"Acc": _pct(summary.get("accuracy")), "F1": _pct(summary.get("f1"))}


def chair_cells(result: dict[str, Any]) -> dict[str, float | None]:
    return {
        "CHAIRs": _pct(result.get("CHAIRs")),
        "CHAIRi": _pct(result.get("CHAIRi")),
        "Recall": _pct(result.get("recall")),
    }


def zeroshot_average(lines: Sequence[dict[str, Any]]) -> float | None:
    """The caption method's average top-1 (%) of an eval-zeroshot output."""
    for line in lines:
        if line.get("dataset") == "average":
            value = (line.get("caption") or {}).get("top1")
            return float(value) if is_number(value) else None
    return None


def benchmark_table(
    amber: Sequence[tuple[str, dict[str, Any]]] = (),
    pope: Sequence[tuple[str, dict[str, Any]]] = (),
    chair: Sequence[tuple[str, dict[str, Any]]] = (),
    zeroshot: Sequence[tuple[str, Sequence[dict[str, Any]]]] = (),
) -> BenchmarkTable:
    """One table of every labelled result: a checkpoint is its label, so files of one checkpoint join up."""
    columns: list[BenchmarkColumn] = []
    cells: dict[str, dict[BenchmarkColumn, float | None]] = {}

    def put(label: str, column: BenchmarkColumn, value: float | None) -> None:
        cells.setdefault(label, {})[column] = value

    if amber:
        amber_columns = [(BenchmarkColumn("AMBER", name, low), key) for name, key, low in AMBER_COMPARED]
        columns += [column for column, _ in amber_columns]
        for label, result in amber:
            row = amber_row(result)
            for column, key in amber_columns:
                put(label, column, row[key])
    if pope:
        pope_columns = [BenchmarkColumn("POPE", "Acc"), BenchmarkColumn("POPE", "F1")]
        columns += pope_columns
        for label, result in pope:
            values = pope_cells(result)
            for column in pope_columns:
                put(label, column, values[column.metric])
    if chair:
        chair_columns = [
            BenchmarkColumn("CHAIR", "CHAIRs", True),
            BenchmarkColumn("CHAIR", "CHAIRi", True),
            BenchmarkColumn("CHAIR", "Recall"),
        ]
        columns += chair_columns
        for label, result in chair:
            values = chair_cells(result)
            for column in chair_columns:
                put(label, column, values[column.metric])
    if zeroshot:
        column = BenchmarkColumn("zero-shot", "top-1")
        columns.append(column)
        for label, lines in zeroshot:
            put(label, column, zeroshot_average(lines))
    rows = [(label, [found.get(c) for c in columns]) for label, found in cells.items()]
    return BenchmarkTable(columns, rows)
