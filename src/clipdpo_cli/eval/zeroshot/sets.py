"""The labelled sets eval-zeroshot is given (folders, JSONL files, named datasets), their prompts chosen."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from clipdpo_cli.eval.zeroshot.datasets import (
    DATASETS,
    DatasetSpec,
    LabelledSet,
    find_spec,
    read_dataset,
    read_image_folder,
    read_jsonl_set,
)
from clipdpo_cli.eval.zeroshot.pipeline import EvalSet
from clipdpo_cli.eval.zeroshot.resources import choose_prompts
from clipdpo_cli.io.errors import UsageError


def per_dataset_files(values: Sequence[str], option: str, names: Sequence[str]) -> dict[str | None, str]:
    """'[DATASET=]FILE' values as {dataset or None (all): file}; a bare FILE needs a single dataset."""
    out: dict[str | None, str] = {}
    for value in values:
        prefix, sep, rest = value.partition("=")
        if sep and prefix in names:
            out[prefix] = rest
        elif sep and not os.path.exists(value):
            try:
                key = find_spec(prefix).key
            except UsageError:
                key = None
            if key not in names:
                raise UsageError(f"{option} {value}: '{prefix}' is not one of the datasets given")
            out[key] = rest
        else:
            out[None] = value
    if None in out and len(names) > 1:
        raise UsageError(f"{option}: with several datasets, write {option} DATASET=FILE")
    return out


def load_sets(
    inputs: Sequence[str], datasets: Sequence[str], data_root: str | None, split: str, image_root: str | None
) -> list[tuple[LabelledSet, DatasetSpec | None]]:
    specs: list[DatasetSpec] = []
    for name in datasets:
        chosen = list(DATASETS) if name.lower() == "all" else [find_spec(name)]
        specs += [s for s in chosen if s not in specs]
    if specs and not data_root:
        raise UsageError("--dataset needs --data-root DIR (the folder holding the datasets)")
    if not specs and not inputs:
        raise UsageError("give labelled image folders or JSONL files, or --dataset NAME --data-root DIR")
    out: list[tuple[LabelledSet, DatasetSpec | None]] = []
    for spec in specs:
        assert data_root is not None
        out.append((read_dataset(spec, data_root, split), spec))
    for path in inputs:
        data = read_image_folder(path) if os.path.isdir(path) else read_jsonl_set(path, image_root)
        out.append((data, None))
    names = [d.name for d, _ in out]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise UsageError(f"two inputs share the name {', '.join(sorted(dupes))}: rename a folder or file")
    return out


def eval_sets(
    loaded: Sequence[tuple[LabelledSet, DatasetSpec | None]],
    split: str,
    classnames: Sequence[str],
    templates: Sequence[str],
    log: Callable[[str], None],
) -> list[EvalSet]:
    """Each loaded set with its class names and templates chosen (--classnames / --templates files first);
    logs the set's notes and one line on where its names and templates come from."""
    names = [d.name for d, _ in loaded]
    name_files = per_dataset_files(classnames, "--classnames", names)
    template_files = per_dataset_files(templates, "--templates", names)
    sets = []
    for data, spec in loaded:
        prompts = choose_prompts(
            data, spec, name_files.get(data.name, name_files.get(None)),
            template_files.get(data.name, template_files.get(None)),
        )  # fmt: skip
        for note in data.notes:
            log(note)
        log(
            f"{data.name}: {len(data.samples)} images, {data.n_classes} classes; names from "
            f"{prompts.classnames_source}; {len(prompts.templates)} templates from {prompts.templates_source}"
        )
        sets.append(EvalSet(data, prompts, spec, split if spec is not None else ""))
    return sets
