"""`clipdpo caption`: LVLM captions of images, several prompts and samples per image (paper Sec. 4.1).

Its options are CaptionSettings' fields and the generation group's (models/generation_settings.py)."""

from typing import Any

from clipdpo_cli.commands.clip_options import ImageRootOpt, WorkersOpt
from clipdpo_cli.commands.generation import generation_command
from clipdpo_cli.commands.options import stage_command
from clipdpo_cli.io.runner import IOSettings, run_stage
from clipdpo_cli.stages.caption import CaptionSettings

NAME = "caption"
SUMMARY = "Caption images with an LVLM: several prompts x samples per image."

_INPUT = (
    "An image folder (recursive), JSONL records with an 'image' field ('-' is stdin), an SFT pool JSON "
    "(LLaVA/ShareGPT), a HF dataset, parquet, arrow or webdataset shards (see --input-format)."
)
IMAGES = {"workers": WorkersOpt, "image_root": ImageRootOpt}


@stage_command(input_help=_INPUT)
@generation_command(CaptionSettings, IMAGES, model="llava-hf/llava-1.5-7b-hf")
def command(io: IOSettings, settings: dict[str, Any]) -> None:
    """clipdpo caption imgs/ -m llava-hf/llava-1.5-7b-hf --seed 0 | clipdpo score > scored.jsonl

    One record per image x prompt x sample: {id, image, kind: "caption", text, prompt, model, sample, and the
    sampling settings}. Records of one image are written together. With --seed the output is reproducible.
    """
    from clipdpo_cli.models.generation_settings import GenerationSettings, pick
    from clipdpo_cli.stages.caption import caption_records

    gen = GenerationSettings.of({**settings, "batch_size": 1})  # caption's own --batch-size: auto below
    lvlm = gen.open_image_text()
    batch_size = settings["batch_size"] or auto_batch_size(lvlm, gen.max_new_tokens, io.quiet)
    own = {**pick(CaptionSettings, settings), "batch_size": batch_size}
    stage = CaptionSettings(**own, chat_template_digest=gen.template_digest)
    run_stage(NAME, io, lambda records, ctx: caption_records(records, lvlm, stage, ctx), allow_folder=True)


def auto_batch_size(lvlm: Any, max_new_tokens: int, quiet: bool) -> int:
    """--batch-size auto: 1 for a server (one request per row, --concurrency in flight: stages/batched.py);
    in-process, the most rows whose KV cache fits (models.device.generation_batch_size)."""
    if getattr(lvlm, "concurrency", None) is not None:
        return 1
    from clipdpo_cli.models.device import generation_batch_size

    batch_size = generation_batch_size(lvlm.model, lvlm.device, max_new_tokens)
    if lvlm.device.type == "cuda":
        from clipdpo_cli.io.log import info

        info(NAME, f"--batch-size auto: {batch_size} rows per generate call", quiet)
    return batch_size
