"""`clipdpo caption`: LVLM captions of images, several prompts and samples per image (paper Sec. 4.1)."""

from enum import Enum
from typing import Annotated

import typer

from clipdpo_cli.commands.generation import (
    ChatTemplateOpt,
    Dtype,
    DtypeOpt,
    MaxNewTokensOpt,
    MaxPixelsOpt,
    SeedOpt,
    TemperatureOpt,
    TopPOpt,
    engine_options,
)
from clipdpo_cli.commands.options import DeviceOpt, stage_command
from clipdpo_cli.io.runner import IOSettings, run_stage
from clipdpo_cli.models.generator import EngineSettings

NAME = "caption"
SUMMARY = "Caption images with an LVLM: several prompts x samples per image."


class NoiseSchedule(str, Enum):
    sigmoid = "sigmoid"
    linear = "linear"


ImageNoiseOpt = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=1000,
        help="POVID's distorted image: show the model each image noised by this many forward-diffusion steps "
        "of 1000 (POVID: 500), a draw fixed by --seed and the caption's id; recorded as image_noise. "
        "For `pair --source noised`.",
    ),
]
NoiseScheduleOpt = Annotated[
    NoiseSchedule,
    typer.Option(
        help="--image-noise's beta schedule: sigmoid (POVID's: 1e-5..5e-3) or linear (DDPM's: 1e-4..0.02).",
    ),
]


_INPUT = (
    "An image folder (recursive), JSONL records with an 'image' field ('-' is stdin), an SFT pool JSON "
    "(LLaVA/ShareGPT), a HF dataset, parquet, arrow or webdataset shards (see --input-format)."
)


@stage_command(input_help=_INPUT)
@engine_options
def command(
    io: IOSettings,
    engine: EngineSettings,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="LVLM: Hugging Face id or local directory (image-text-to-text); --engine openai: the served "
            "model's name.",
        ),
    ] = "llava-hf/llava-1.5-7b-hf",
    prompts: Annotated[
        str | None, typer.Option(help="File of prompts, one per line ('#' comments); default: 5 built-in.")
    ] = None,
    samples_per_prompt: Annotated[
        int, typer.Option(min=1, help="Captions sampled per prompt and image.")
    ] = 1,
    temperature: TemperatureOpt = 0.7,
    top_p: TopPOpt = 0.95,
    max_new_tokens: MaxNewTokensOpt = 128,
    seed: SeedOpt = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            show_default="auto",
            help="Rows (image x prompt x sample) per generate call; auto: 16 on CPU, on a GPU the most rows "
            "(a power of two up to 256) whose KV cache of 1024 prompt + --max-new-tokens tokens fits in 70% "
            "of the memory free after loading. The output does not depend on it.",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=0, help="Threads decoding images ahead of the model.")] = 4,
    image_root: Annotated[
        str | None,
        typer.Option(help="Resolve relative 'image' paths under this folder; default: $CLIPDPO_IMAGE_ROOT."),
    ] = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = Dtype.auto,
    chat_template: ChatTemplateOpt = None,
    max_pixels: MaxPixelsOpt = None,
    image_noise: ImageNoiseOpt = None,
    image_noise_schedule: NoiseScheduleOpt = NoiseSchedule.sigmoid,
) -> None:
    """clipdpo caption imgs/ -m llava-hf/llava-1.5-7b-hf --seed 0 | clipdpo score > scored.jsonl

    One record per image x prompt x sample: {id, image, kind: "caption", text, prompt, model, sample, and the
    sampling settings}. Records of one image are written together. With --seed the output is reproducible.
    """
    import hashlib

    from clipdpo_cli.models.generator import open_image_text_generator
    from clipdpo_cli.models.hub import read_chat_template
    from clipdpo_cli.models.sampling import check_sampling
    from clipdpo_cli.stages.caption import CaptionSettings, ImageNoise, caption_records, read_prompts

    check_sampling(temperature, top_p, max_new_tokens)
    template = read_chat_template(chat_template)
    chosen_prompts = tuple(read_prompts(prompts))  # a bad prompts file fails before the model loads
    lvlm = open_image_text_generator(model, engine, device, dtype.value, template, max_pixels)
    if batch_size is None and getattr(lvlm, "concurrency", None) is not None:
        batch_size = 1  # a server gets one request per row, --concurrency in flight (stages/batched.py)
    elif batch_size is None:
        import sys

        from clipdpo_cli.models.device import generation_batch_size

        batch_size = generation_batch_size(lvlm.model, lvlm.device, max_new_tokens)
        if not io.quiet and lvlm.device.type == "cuda":
            print(f"clipdpo {NAME}: --batch-size auto: {batch_size} rows per generate call", file=sys.stderr)
    settings = CaptionSettings(
        prompts=chosen_prompts,
        samples_per_prompt=samples_per_prompt,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        batch_size=batch_size,
        image_root=image_root,
        workers=workers,
        max_pixels=max_pixels,
        chat_template_digest=hashlib.sha256(template.encode()).hexdigest()[:16] if template else None,
        image_noise=None if image_noise is None else ImageNoise(image_noise, image_noise_schedule.value),
    )
    run_stage(NAME, io, lambda records, ctx: caption_records(records, lvlm, settings, ctx), allow_folder=True)
