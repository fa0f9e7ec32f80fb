"""The readers of the formats the `datasets` library reads: hf (a `save_to_disk` folder, or a folder
`load_dataset` reads), parquet and arrow files (streamed). Image columns reach the one image decoder as bytes
(io/sources/byte_images.py); a row's own `id` is kept as `source_id`, --text-column read as `text`."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.io.jsonl import BadLineHandler
from clipdpo_cli.io.sources.byte_images import SOURCE_ID, identified, json_value, with_image
from clipdpo_cli.io.sources.formats import (
    DESCRIBED,
    HF_SAVED_MARKERS,
    InputSettings,
    Read,
    ReadFormat,
    counted,
)
from clipdpo_cli.io.stage import StageContext


def dataset_reader(fmt: str) -> ReadFormat:
    """The reader of `fmt` ('hf', 'parquet' or 'arrow')."""

    def read_dataset(
        path: str, options: InputSettings, ctx: StageContext, on_bad_line: BadLineHandler, counter: list[int]
    ) -> Read:
        return Read(counted(_hf_records(path, fmt, options, ctx), counter))

    read_dataset.__name__ = f"read_{fmt}"
    return read_dataset


def _hf_records(path: str, fmt: str, options: InputSettings, ctx: StageContext) -> Iterator[dict[str, Any]]:
    dataset = _load_dataset(path, fmt, options)
    rows: Iterator[dict[str, Any]] | None = None
    names = list(dataset.column_names or ())
    if not names:  # csv or json streamed: the columns are known from the first row
        rows = iter(dataset)
        first = next(rows, None)
        names = list(first or ())
        rows = itertools.chain([first] if first is not None else [], rows)
    dataset, image_column, drop = _hf_columns(path, dataset, names, options)
    text_column = options.text_column
    if text_column and names and text_column not in names:
        raise UsageError(f"--text-column {text_column}: {path} has the columns {', '.join(names)}")
    try:
        for row in dataset if rows is None else rows:
            record: dict[str, Any] = {}
            for key, value in row.items():
                if key == image_column or key in drop or not json_value(value):
                    continue
                record["text" if key == text_column else key] = value
            if record.get("id") is not None:
                record.setdefault(SOURCE_ID, record["id"])  # kept when a stage gives the record its own id
            yield identified(with_image(record, row.get(image_column)))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the dataset: {exc}") from None


def _load_dataset(path: str, fmt: str, options: InputSettings) -> Any:
    """A datasets Dataset / IterableDataset of one split (streaming where that avoids a cache copy)."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        if fmt == "hf" and any(os.path.exists(os.path.join(path, m)) for m in HF_SAVED_MARKERS):
            loaded = datasets.load_from_disk(path)
        elif fmt == "hf":
            loaded = datasets.load_dataset(path, streaming=True)
        else:
            loaded = datasets.load_dataset(fmt, data_files=path, streaming=True)
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise InputError(f"{path}: cannot load it as {DESCRIBED[fmt]}: {exc}") from None
    except Exception as exc:  # pyarrow's errors (ArrowInvalid, ...) are not OSError/ValueError subclasses
        raise InputError(f"{path}: cannot load it as {DESCRIBED[fmt]}: {type(exc).__name__}: {exc}") from None
    if isinstance(loaded, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        splits = list(loaded)
        split = options.split or (splits[0] if len(splits) == 1 else "train" if "train" in splits else None)
        if split not in loaded:
            raise UsageError(f"{path} has the splits {', '.join(splits)}: pass --split NAME")
        loaded = loaded[split]
    elif options.split:
        raise UsageError(f"--split {options.split}: {path} holds one split")
    return loaded


def _hf_columns(
    path: str, dataset: Any, columns: list[str], options: InputSettings
) -> tuple[Any, str, set[str]]:
    """The dataset with its Image columns cast to decode=False (their bytes reach the one image decoder,
    not PIL inside `datasets`), the image column, and the columns left out (other image columns)."""
    import datasets

    features = dataset.features or {}
    image_features = [k for k, f in features.items() if isinstance(f, datasets.Image)]
    column = options.image_column or (
        "image" if "image" in columns else image_features[0] if len(image_features) == 1 else None
    )
    if column is None or (columns and column not in columns):
        listed = ", ".join(columns) or "none"
        raise UsageError(f"{path}: no image column found (columns: {listed}): pass --image-column NAME")
    if isinstance(features.get(column), datasets.Sequence | list):
        raise UsageError(f"{path}: column '{column}' holds several images per row; one image per row is read")
    for name in image_features:
        dataset = dataset.cast_column(name, datasets.Image(decode=False))
    return dataset, column, set(image_features) - {column}
