"""Reading what a run leaves behind, for the report: JSONL records, eval results, a training folder."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.jsonl import LineSource, iter_records, open_binary, read_batches, read_jsonl
from clipdpo_cli.io.progress import Progress, ProgressState


def labelled(arg: str) -> tuple[str | None, str]:
    """`LABEL=PATH` -> (LABEL, PATH); a plain PATH (or one that exists as given) -> (None, PATH)."""
    if "=" in arg and not os.path.exists(arg):
        label, path = arg.split("=", 1)
        if label and path:
            return label, path
    return None, arg


def records(paths: list[str], quiet: bool = True) -> Iterator[dict[str, Any]]:
    """The records of several JSONL files (.gz ok) in turn; a bad line is one InputError naming it.
    Unless `quiet`, the project's progress display shows each file being read (on a terminal)."""
    for path in paths:

        def fail(lineno: int, _reason: str, message: str, path: str = path) -> None:
            raise InputError(f"{path}: line {lineno}: {message}")

        source = LineSource(path)

        def poll(state: ProgressState, source: LineSource = source) -> None:
            if source.total_bytes:
                state.bytes_read = source.bytes_read

        try:
            name = f"report: {os.path.basename(path)}"
            with Progress(name, total_bytes=source.total_bytes, quiet=quiet, poll=poll) as progress:
                for record in iter_records(read_batches(source.open()), fail, name=path):
                    progress.state.done += 1
                    yield record
        finally:
            source.close()


def read_json(path: str) -> Any:
    """One JSON document (an `eval-amber` result, a trainer state) or a clear InputError."""
    with open_binary(path) as fh:
        data = fh.read()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not a JSON document ({exc})") from None


def shown_path(path: str) -> str:
    """A local path as the page shows it: relative to the current folder when under it, else the file's
    name alone; the page never carries an absolute local path ('-' stays)."""
    if path == "-":
        return path
    absolute = os.path.abspath(os.path.expanduser(path))
    relative = os.path.relpath(absolute, os.getcwd())
    if relative == os.curdir or relative.split(os.sep, 1)[0] == os.pardir:
        return os.path.basename(absolute) or relative
    return relative


def short_model_name(model: str) -> str:
    """A model as a label: a local folder by its last component(s), a Hub id as it is."""
    if os.path.isdir(model) or model.startswith(("/", "./", "../", "~")):
        parts = [p for p in os.path.normpath(model).split(os.sep) if p]
        return (
            "/".join(parts[-2:])
            if parts and parts[-1] in ("model", "final")
            else (parts[-1] if parts else model)
        )
    return model


def file_stem(path: str) -> str:
    name = os.path.basename(path)
    for ext in (".gz", ".jsonl", ".json"):
        name = name[: -len(ext)] if name.endswith(ext) else name
    return name


def unique_labels(labels: list[str], paths: list[str]) -> list[str]:
    """Labels made unique by adding the file name where two coincide."""
    out = []
    for label, path in zip(labels, paths, strict=True):
        out.append(f"{label} [{file_stem(path)}]" if labels.count(label) > 1 else label)
    return out


@dataclass
class AmberResult:
    label: str
    path: str
    result: dict[str, Any]


def read_amber(args: list[str]) -> list[AmberResult]:
    """`eval-amber` results (`[LABEL=]FILE`); the label defaults to the result's model, else the file name."""
    loaded = []
    for arg in args:
        label, path = labelled(arg)
        result = read_json(path)
        if not isinstance(result, dict) or result.get("benchmark") != "AMBER":
            raise InputError(f'{path}: not an eval-amber result (no "benchmark": "AMBER")')
        model = result.get("model")
        loaded.append(
            (label or (short_model_name(model) if isinstance(model, str) else file_stem(path)), path, result)
        )
    labels = unique_labels([x[0] for x in loaded], [x[1] for x in loaded])
    return [AmberResult(label, path, result) for label, (_, path, result) in zip(labels, loaded, strict=True)]


@dataclass
class ZeroShotResult:
    label: str
    path: str
    lines: list[dict[str, Any]]


def read_zeroshot(args: list[str]) -> list[ZeroShotResult]:
    """`eval-zeroshot` outputs (`[LABEL=]FILE`, one JSON line per dataset); label as for AMBER."""
    loaded = []
    for arg in args:
        label, path = labelled(arg)
        lines = list(read_jsonl(path))
        if not lines or not all("dataset" in line for line in lines):
            raise InputError(f'{path}: not an eval-zeroshot output (lines with a "dataset" field)')
        for lineno, line in enumerate(lines, 1):
            _check_zeroshot_line(path, lineno, line)
        model = next((line["model"] for line in lines if isinstance(line.get("model"), str)), None)
        loaded.append((label or (short_model_name(model) if model else file_stem(path)), path, lines))
    labels = unique_labels([x[0] for x in loaded], [x[1] for x in loaded])
    return [
        ZeroShotResult(label, path, lines) for label, (_, path, lines) in zip(labels, loaded, strict=True)
    ]


def _check_zeroshot_line(path: str, lineno: int, line: dict[str, Any]) -> None:
    """InputError naming the line where an eval-zeroshot result has a field of the wrong shape."""
    problem = None
    if not isinstance(line["dataset"], str):
        problem = "'dataset' must be a string"
    for method in ("caption", "clip"):
        if line.get(method) is not None and not isinstance(line[method], dict):
            problem = f"'{method}' must be an object of accuracies ({{\"top1\": ...}})"
    for key in ("model", "title", "text_encoder"):
        if line.get(key) is not None and not isinstance(line[key], str):
            problem = f"'{key}' must be a string"
    if problem:
        raise InputError(f"{path}: line {lineno}: {problem}: not an eval-zeroshot output as it writes them")


@dataclass
class TrainRun:
    label: str
    source: str  # the file the log history came from
    history: list[dict[str, Any]]
    summary: dict[str, Any]  # train_summary.json without its log history ({} when absent)


def _checkpoint_states(folder: str) -> list[str]:
    def step(path: str) -> int:
        match = re.search(r"checkpoint-(\d+)", path)
        return int(match.group(1)) if match else -1

    return sorted(glob.glob(os.path.join(folder, "checkpoint-*", "trainer_state.json")), key=step)


def read_train(arg: str) -> TrainRun:
    """A training run from `[LABEL=]PATH`: an output folder (its train_summary.json, else its
    trainer_state.json, else the last checkpoint's), or one of those files itself."""
    label, path = labelled(arg)
    if os.path.isdir(path):
        candidates = [os.path.join(path, "train_summary.json"), os.path.join(path, "trainer_state.json")]
        found = next((c for c in candidates if os.path.isfile(c)), None)
        found = found or next(iter(reversed(_checkpoint_states(path))), None)
        if found is None:
            raise InputError(
                f"{path}: no train_summary.json, trainer_state.json or checkpoint-*/trainer_state.json "
                "in this folder"
            )
        name = os.path.basename(os.path.normpath(path))
    else:
        found = path
        name = os.path.basename(os.path.dirname(os.path.abspath(path)))
    data = read_json(found)
    history = data.get("log_history") if isinstance(data, dict) else None
    if not isinstance(history, list):
        raise InputError(f"{found}: no log_history list (expected train_summary.json or trainer_state.json)")
    summary = {k: v for k, v in data.items() if k != "log_history"} if "output_dir" in data else {}
    return TrainRun(label or name, found, [h for h in history if isinstance(h, dict)], summary)


@dataclass
class BenchmarkResult:
    label: str
    path: str
    result: dict[str, Any]


def read_benchmark(args: list[str], benchmark: str, command: str) -> list[BenchmarkResult]:
    """`eval-pope` / `eval-chair` results (`[LABEL=]FILE`, JSON with "benchmark": `benchmark`); label as for
    AMBER."""
    loaded = []
    for arg in args:
        label, path = labelled(arg)
        result = read_json(path)
        if not isinstance(result, dict) or result.get("benchmark") != benchmark:
            raise InputError(f'{path}: not an {command} result (no "benchmark": "{benchmark}")')
        model = result.get("model")
        loaded.append(
            (label or (short_model_name(model) if isinstance(model, str) else file_stem(path)), path, result)
        )
    labels = unique_labels([x[0] for x in loaded], [x[1] for x in loaded])
    return [
        BenchmarkResult(label, path, result) for label, (_, path, result) in zip(labels, loaded, strict=True)
    ]
