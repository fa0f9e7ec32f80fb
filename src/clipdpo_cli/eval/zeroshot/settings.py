"""What eval-zeroshot does: ZeroshotSettings, whose fields are also the command's options (io.setting).

Options that several commands share (--device, --dtype, --shard, --on-error, ...) are marked `shared`: their
annotation and help are declared once in commands/ (commands/eval_options.py). No `from __future__ import
annotations` here: the field types are the options' types.
"""

import enum
import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.eval.answer import value_of
from clipdpo_cli.io.progress import DEFAULT_EVERY
from clipdpo_cli.io.setting import setting
from clipdpo_cli.models.generator import EngineSettings

DEFAULT_PROMPT = "What is the main object in this image? Describe it in one short sentence."
# A long-context SigLIP (64 text tokens; the 224 px SO400M SigLIP reads only 16): see docs/zeroshot.md.
DEFAULT_TEXT_ENCODER = "siglip-so400m"


class Baseline(str, enum.Enum):
    none = "none"
    clip = "clip"


def _files(values: Sequence[str] | None) -> list[str]:
    return list(values or [])


def _baseline(value: Any) -> str | None:
    value = value_of(value)
    return None if value in (None, "none") else value


def captions_output(captions: Sequence[str]) -> str | None:
    """Where new captions are appended: the first --captions file, unless it is a glob (read only)."""
    return captions[0] if captions and not glob.has_magic(captions[0]) else None


@dataclass
class ZeroshotSettings:
    """eval-zeroshot's options (each field a `clipdpo eval-zeroshot` option) and what the pipeline derives."""

    dataset: list[str] = setting(
        (), "One of the paper's nine sets (cars, pets, flowers, imagenet, food101, eurosat, caltech101, "
        "ucf101, sun397) or 'all', read from --data-root in its distributed layout. Repeatable.",
        cli_type=list[str] | None, cli_default=None, parse=_files,
    )  # fmt: skip
    data_root: str | None = setting(None, "Folder holding the datasets (e.g. DIR/food-101, DIR/SUN397).")
    split: str = setting("test", "Split of the named datasets (ImageNet: test means val).")
    text_encoder: str = setting(
        DEFAULT_TEXT_ENCODER, "CLIP/SigLIP model that embeds captions and class prompts (a `score --model` "
        "name: open_clip alias or name, or transformers:ID_OR_DIR).",
    )  # fmt: skip
    prompt: str = setting(
        DEFAULT_PROMPT, "Caption prompt (default: describe the main object).",
        cli_type=str | None, cli_default=None, parse=lambda text: text or DEFAULT_PROMPT,
    )  # fmt: skip
    captions: Sequence[str] = setting(
        (), "Captions cache (JSONL): read, and new captions appended to the first one. Repeatable; globs "
        "allowed (e.g. 'caps.*.jsonl' to score the files of several shards).",
        cli_type=list[str] | None, cli_default=None, parse=_files,
    )  # fmt: skip
    classnames: list[str] = setting(
        (), "Class names file ([DATASET=]FILE): one per line in label order, or ID<TAB>name.",
        cli_type=list[str] | None, cli_default=None, parse=_files,
    )  # fmt: skip
    templates: list[str] = setting(
        (), "Prompt templates file ([DATASET=]FILE): one per line with {c} for the class.",
        cli_type=list[str] | None, cli_default=None, parse=_files,
    )  # fmt: skip
    baseline: str | None = setting(
        None, "clip: also classify the images with the text encoder's image tower.",
        cli_type=Baseline, cli_default="none", parse=_baseline,
    )  # fmt: skip
    limit: int | None = setting(None, shared=True)  # images per dataset, a stable pick
    shard: str | None = setting(None, shared=True)  # captioning only: the runner's --shard (io/shard.py)
    image_root: str | None = setting(None, shared=True)  # of JSONL inputs (last: the JSONL file's folder)
    batch_size: int = setting(8, "Images per LVLM / image-encoder batch.", min=1)
    precision: str = setting("fp32", shared=True, parse=value_of)  # the text encoder's
    predictions: str | None = setting(
        None, "Also write one JSONL record per image: its caption and top-5 classes per method."
    )
    output: str | None = setting(None, shared=True)
    on_error: str = setting("fail", shared=True, parse=value_of)
    quiet: bool = setting(False, shared=True)  # no progress display
    progress_every: float = setting(DEFAULT_EVERY, shared=True)  # seconds between plain progress lines
    # the generation group's options (models/generation_settings.py, declared there once), with
    # eval-zeroshot's defaults: generation_options reads them here
    model: str | None = None  # the LVLM; None: captions only from the cache
    max_new_tokens: int = 64  # a caption's
    device: str = "auto"  # the LVLM's and the text encoder's
    dtype: str = "auto"  # the LVLM's
    chat_template: str | None = None
    max_pixels: int | None = None
    engine: EngineSettings = field(default_factory=EngineSettings)  # --engine and the server's options
    # not options: what follows from the above
    text_batch_size: int = 256
    captions_out: str | None = None  # where new captions are appended (default: captions_output(captions))
    use_captions: bool | None = None  # classify by captions (default: with --model or --captions)

    def __post_init__(self) -> None:
        if self.captions_out is None:
            self.captions_out = captions_output(self.captions)
        if self.use_captions is None:
            self.use_captions = bool(self.model or self.captions)
