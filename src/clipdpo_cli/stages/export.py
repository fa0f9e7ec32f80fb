"""Pair records -> the preference formats other trainers load as they are (`clipdpo export`).

- `trl`: TRL's conversational vision preference format, one JSON object per line:
  `{"id", "images": [path], "prompt": [user turn], "chosen": [assistant turn], "rejected": [assistant turn]}`.
  The user turn's content holds one `{"type": "image"}` placeholder per image before the prompt text, so
  TRL's vision collator (`DataCollatorForVisionPreference`) renders exactly as many image tokens as there
  are images; `datasets.load_dataset("json", ...)` gives DPOTrainer a dataset it trains on unchanged.
- `sharegpt` / `llamafactory`: LLaMA-Factory's sharegpt ranking format (data/README.md of
  hiyouga/LLaMA-Factory): `{"conversations": [{"from": "human", "value": "<image>prompt"}],
  "chosen": {"from": "gpt", ...}, "rejected": {"from": "gpt", ...}, "images": [path]}`, one `<image>` token
  per image; `llamafactory` also writes the `dataset_info.json` entry that registers the file.
- `parquet`: the `trl` rows written by `datasets` with the images as an `Image` feature (the image bytes are
  embedded unless asked otherwise), so `load_dataset("parquet", ...)` decodes them wherever the file goes.

Image paths are written absolute (relative ones joined to --image-root first), so the exported file loads
from any working directory. Validation is train's (`io.pairs.pair_row`): a pair `train` refuses is refused
here too, with the same message.
"""

import enum
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import BadRecord, InputError
from clipdpo_cli.io.jsonfile import write_json
from clipdpo_cli.io.pairs import pair_row
from clipdpo_cli.io.setting import setting
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.io.values import enum_value

FORMATS = ("trl", "sharegpt", "llamafactory", "parquet")
IMAGE_TOKEN = "<image>"  # LLaMA-Factory's image placeholder (and LLaVA's image token)


class ExportFormat(str, enum.Enum):
    trl = "trl"
    llamafactory = "llamafactory"
    sharegpt = "sharegpt"
    parquet = "parquet"


@dataclass(frozen=True)
class ExportSettings:
    """What `clipdpo export` writes (each field is also one of its options)."""

    format: str = setting(
        "trl", "trl: TRL DPOTrainer's conversational vision preference JSONL; sharegpt: LLaMA-Factory's "
        "sharegpt ranking JSONL; llamafactory: the same plus its dataset_info.json entry (needs -o); "
        "parquet: the trl rows with the images as a datasets Image column (needs -o).",
        flags=("--format", "-f"), cli_type=ExportFormat, cli_default=ExportFormat.trl, parse=enum_value,
    )  # fmt: skip
    image_root: str | None = setting(None, shared=True)
    dataset_name: str | None = setting(
        None, "llamafactory: the dataset's name in dataset_info.json (default: -o's file stem)."
    )
    embed_images: bool = setting(
        True, "parquet: store the image files' bytes in the file (portable) or only their paths.",
        flags=("--embed-images/--no-embed-images",),
    )  # fmt: skip


def checked_pair(record: dict[str, Any], image_root: str | None) -> dict[str, Any]:
    """The pair's fields as train reads them, its image path absolute; BadRecord when it is unusable."""
    row = pair_row(record, image_root, check_image=False)
    if IMAGE_TOKEN in row["prompt"]:
        raise BadRecord(
            f"the prompt already holds the image placeholder '{IMAGE_TOKEN}'", reason="image token in prompt"
        )
    image = os.path.abspath(row["image"])
    if not os.path.isfile(image):
        hint = (
            "" if image_root or os.path.isabs(record["image"]) else " (relative paths start at --image-root)"
        )
        raise BadRecord(f"image not found: {image}{hint}", reason="missing image")
    return {**row, "id": record.get("id", row["id"]), "image": image}


def trl_row(pair: dict[str, Any]) -> dict[str, Any]:
    """TRL's conversational vision preference example of a checked pair."""
    return {
        "id": pair["id"],
        "images": [pair["image"]],
        "prompt": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": pair["prompt"]}]}
        ],
        "chosen": [{"role": "assistant", "content": [{"type": "text", "text": pair["chosen"]}]}],
        "rejected": [{"role": "assistant", "content": [{"type": "text", "text": pair["rejected"]}]}],
    }


def sharegpt_row(pair: dict[str, Any]) -> dict[str, Any]:
    """LLaMA-Factory's sharegpt ranking example of a checked pair (one `<image>` token, one image)."""
    return {
        "id": pair["id"],
        "conversations": [{"from": "human", "value": IMAGE_TOKEN + pair["prompt"]}],
        "chosen": {"from": "gpt", "value": pair["chosen"]},
        "rejected": {"from": "gpt", "value": pair["rejected"]},
        "images": [pair["image"]],
    }


def export_records(
    records: Iterator[dict[str, Any]],
    fmt: str,
    image_root: str | None = None,
    ctx: StageContext | None = None,
) -> Iterator[dict[str, Any]]:
    """One exported example per usable pair: TRL rows (trl, parquet), else sharegpt rows."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format '{fmt}' (one of {', '.join(FORMATS)})")
    ctx = ctx or StageContext("export")
    convert = sharegpt_row if fmt in ("sharegpt", "llamafactory") else trl_row
    for record in records:
        try:
            pair = checked_pair(record, image_root)
        except BadRecord as exc:
            ctx.bad(record, exc)
            continue
        yield convert(pair)


def dataset_info_entry(file_name: str) -> dict[str, Any]:
    """The `dataset_info.json` description of an exported sharegpt ranking file (LLaMA-Factory's schema)."""
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "ranking": True,
        "columns": {
            "messages": "conversations",
            "chosen": "chosen",
            "rejected": "rejected",
            "images": "images",
        },
    }


def write_dataset_info(data_file: str, name: str | None = None) -> tuple[str, str]:
    """Add (or replace) the entry of `data_file` in the dataset_info.json of its folder: (path, name).

    Other entries of an existing dataset_info.json (LLaMA-Factory's own data/ folder) are kept.
    """
    folder = os.path.dirname(os.path.abspath(data_file))
    file_name = os.path.basename(data_file)
    name = name or file_name.split(".", 1)[0]
    path = os.path.join(folder, "dataset_info.json")
    info: dict[str, Any] = {}
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as fh:
                info = json.load(fh)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read it as JSON ({exc}); move it away or fix it") from None
        if not isinstance(info, dict):
            raise InputError(f"{path}: not a JSON object of dataset descriptions")
    info[name] = dataset_info_entry(file_name)
    write_json(info, path)
    return path, name


def write_parquet(trl_jsonl: str, output: str, embed_images: bool = True) -> int:
    """The TRL rows of `trl_jsonl` as a parquet file, `images` a column of `datasets.Image`: rows written.

    With `embed_images` the image files' bytes go into the file (what `push_to_hub` does), else their paths.
    The features are stored in the file, so `load_dataset("parquet", ...)` gives PIL images back.
    """
    import tempfile

    from datasets import Dataset, Image, List
    from datasets.table import embed_table_storage

    with tempfile.TemporaryDirectory(prefix="clipdpo-export-") as cache:
        dataset = Dataset.from_json(trl_jsonl, cache_dir=cache)
        if not len(dataset):
            raise InputError("no usable pairs to write")
        dataset = dataset.cast_column("images", List(Image()))
        if embed_images:
            dataset = dataset.with_format("arrow").map(embed_table_storage, batched=True).with_format(None)
        dataset.to_parquet(output)
        return len(dataset)
