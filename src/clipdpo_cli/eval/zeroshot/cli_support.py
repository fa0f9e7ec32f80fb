"""Turns the eval-zeroshot command-line options into EvalSets and Settings, runs, and writes the output."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from clipdpo_cli.eval.zeroshot.datasets import (
    DATASETS,
    DatasetSpec,
    LabelledSet,
    find_spec,
    read_dataset,
    read_image_folder,
    read_jsonl_set,
)
from clipdpo_cli.eval.zeroshot.pipeline import DEFAULT_PROMPT, EvalSet, Settings, evaluate, format_table
from clipdpo_cli.eval.zeroshot.resources import choose_prompts
from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.io.progress import DEFAULT_EVERY
from clipdpo_cli.io.shard import Shard


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


def write_results(results: Sequence[dict[str, Any]], output: str | None) -> None:
    from clipdpo_cli.io.jsonl import JsonlWriter

    with JsonlWriter(output) as writer:
        for result in results:
            writer.write(result)


def run_command(
    *,
    inputs: Sequence[str],
    datasets: Sequence[str],
    data_root: str | None,
    split: str,
    model: str | None,
    text_encoder: str,
    prompt: str | None,
    captions: Sequence[str],
    classnames: Sequence[str],
    templates: Sequence[str],
    baseline: str,
    limit: int | None,
    shard: str | None,
    image_root: str | None,
    batch_size: int,
    max_new_tokens: int,
    device: str,
    precision: str,
    dtype: str,
    output: str | None,
    chat_template: str | None = None,
    max_pixels: int | None = None,
    predictions: str | None = None,
    on_error: str,
    quiet: bool,
    log: Callable[[str], None],
    progress_every: float = DEFAULT_EVERY,
) -> list[dict[str, Any]]:
    say = (lambda _msg: None) if quiet else log
    loaded = load_sets(inputs, datasets, data_root, split, image_root)
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
            say(note)
        say(
            f"{data.name}: {len(data.samples)} images, {data.n_classes} classes; names from "
            f"{prompts.classnames_source}; {len(prompts.templates)} templates from {prompts.templates_source}"
        )
        sets.append(EvalSet(data, prompts, spec, split if spec is not None else ""))
    settings = Settings(
        model=model, text_encoder=text_encoder, prompt=prompt or DEFAULT_PROMPT,
        captions=list(captions), captions_out=captions[0] if captions and not _is_glob(captions[0]) else None,
        use_captions=bool(model or captions), baseline=None if baseline == "none" else baseline,
        limit=limit, shard=Shard.parse(shard), batch_size=batch_size, max_new_tokens=max_new_tokens,
        device=device, precision=precision, dtype=dtype, on_error=on_error,
        chat_template=chat_template, max_pixels=max_pixels, predictions_out=predictions, quiet=quiet,
        progress_every=progress_every,
    )  # fmt: skip
    if settings.model and not captions:
        say("captions are not cached (pass --captions FILE to keep them for re-scoring)")
    if settings.model is None and not settings.shard.is_whole:
        raise UsageError("--shard splits the captioning: it needs --model")
    results = evaluate(sets, settings, say)
    if results:
        write_results(results, output)
        if not quiet:
            log("\n" + format_table(results))
    return results


def _is_glob(path: str) -> bool:
    import glob

    return glob.has_magic(path)
