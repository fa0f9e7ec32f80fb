"""`clipdpo export`: pairs in the formats TRL's DPOTrainer and LLaMA-Factory load as they are; its options
are ExportSettings' fields."""

import os
from typing import Any

from clipdpo_cli.commands.clip_options import ImageRootOpt
from clipdpo_cli.commands.options import stage_command
from clipdpo_cli.commands.settings_options import settings_options
from clipdpo_cli.io.log import info
from clipdpo_cli.io.runner import IOSettings, check_io, run_stage
from clipdpo_cli.io.setting import declared
from clipdpo_cli.stages.export import ExportSettings

NAME = "export"
SUMMARY = "Write pairs for other trainers: TRL (JSONL, parquet with images) or LLaMA-Factory (sharegpt)."


@stage_command(input_help="Pair records (JSONL from `clipdpo pair`; '-' stdin, .gz ok).")
@settings_options(declared(ExportSettings), {"image_root": ImageRootOpt})
def command(io: IOSettings, settings: dict[str, Any]) -> None:
    """clipdpo export pairs.jsonl --format trl -o pairs.trl.jsonl

    Each pair {image, prompt, chosen, rejected} becomes one example of the chosen format, with the image
    placeholder in the prompt and the image path made absolute. `datasets.load_dataset("json" or "parquet",
    data_files=FILE)` gives TRL's DPOTrainer a dataset it trains on unchanged; `--format llamafactory -o
    DATA_DIR/name.jsonl` also registers the file in DATA_DIR/dataset_info.json (`dataset: name`).
    """
    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.stages.export import export_records, write_dataset_info

    options = ExportSettings(**settings)
    fmt, image_root = options.format, options.image_root
    if fmt in ("llamafactory", "parquet") and (io.output is None or io.output == "-"):
        raise UsageError(f"--format {fmt} needs -o FILE")
    if fmt == "llamafactory" and not io.output.endswith((".json", ".jsonl")):
        raise UsageError("--format llamafactory: -o must end in .json or .jsonl (what LLaMA-Factory reads)")
    if fmt == "llamafactory":  # its dataset_info.json is an output too
        registry = os.path.join(os.path.dirname(os.path.abspath(io.output)), "dataset_info.json")
        check_io(io, extra_outputs=(("dataset_info.json", registry),))
    if fmt == "parquet":
        return export_parquet(io, image_root, options.embed_images)
    run_stage(NAME, io, lambda records, ctx: export_records(records, fmt, image_root, ctx), one_to_one=True)
    if fmt == "llamafactory":
        path, name = write_dataset_info(io.output, options.dataset_name)
        info(NAME, f"registered '{name}' in {path}", io.quiet)


def export_parquet(io: IOSettings, image_root: str | None, embed_images: bool) -> None:
    """The trl rows through the runner into a temporary JSONL, then one parquet file written by `datasets`."""
    from dataclasses import replace

    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.stages.export import export_records, write_parquet

    if io.resume:
        raise UsageError("--format parquet cannot --resume (a parquet file is written whole)")
    output = str(io.output)
    tmp_jsonl, tmp_parquet = f"{output}.rows.tmp.jsonl", f"{output}.tmp"
    try:
        ctx = run_stage(
            NAME,
            replace(io, output=tmp_jsonl),
            lambda records, ctx: export_records(records, "parquet", image_root, ctx),
            one_to_one=True,
        )
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()  # one line of ours instead of four progress bars of datasets
        info(NAME, f"writing {output} ...", io.quiet)
        rows = write_parquet(tmp_jsonl, tmp_parquet, embed_images) if ctx.stats.n_out else 0
        if not rows:
            from clipdpo_cli.io.errors import InputError

            raise InputError("no usable pairs: nothing written")
        os.replace(tmp_parquet, output)
    finally:
        for path in (tmp_jsonl, tmp_parquet):
            if os.path.exists(path):
                os.remove(path)
    what = "embedded" if embed_images else "as paths"
    info(NAME, f"wrote {output} ({rows:,} rows, images {what})", io.quiet)
