"""`clipdpo eval-zeroshot`: caption-based zero-shot classification (paper Sec. 6.2, Table 3)."""

import enum
import sys
from typing import Annotated

import typer

from clipdpo_cli.commands.generation import MaxPixelsOpt
from clipdpo_cli.commands.options import OnError, ProgressEveryOpt, QuietOpt
from clipdpo_cli.io.progress import DEFAULT_EVERY

NAME = "eval-zeroshot"
SUMMARY = "Zero-shot classification from the LVLM's captions, vs. CLIP (paper Sec. 6.2, Table 3)."

# A long-context SigLIP (64 text tokens; the 224 px SO400M SigLIP reads only 16): see docs/zeroshot.md.
DEFAULT_TEXT_ENCODER = "siglip-so400m"


class Baseline(str, enum.Enum):
    none = "none"
    clip = "clip"


def command(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Labelled sets: image folders (one sub-folder per class) or JSONL files of {image, label}.",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            help="One of the paper's nine sets (cars, pets, flowers, imagenet, food101, eurosat, caltech101, "
            "ucf101, sun397) or 'all', read from --data-root in its distributed layout. Repeatable."
        ),
    ] = None,
    data_root: Annotated[
        str | None, typer.Option(help="Folder holding the datasets (e.g. DIR/food-101, DIR/SUN397).")
    ] = None,
    split: Annotated[
        str, typer.Option(help="Split of the named datasets (ImageNet: test means val).")
    ] = "test",
    model: Annotated[
        str | None,
        typer.Option(help="LVLM that writes the captions (HF id or local folder); not needed when cached."),
    ] = None,
    text_encoder: Annotated[
        str,
        typer.Option(help="CLIP/SigLIP model that embeds captions and class prompts (open_clip name/alias)."),
    ] = DEFAULT_TEXT_ENCODER,
    prompt: Annotated[
        str | None, typer.Option(help="Caption prompt (default: describe the main object).")
    ] = None,
    captions: Annotated[
        list[str] | None,
        typer.Option(
            help="Captions cache (JSONL): read, and new captions appended to the first one. Repeatable; "
            "globs allowed (e.g. 'caps.*.jsonl' to score the files of several shards)."
        ),
    ] = None,
    classnames: Annotated[
        list[str] | None,
        typer.Option(help="Class names file ([DATASET=]FILE): one per line in label order, or ID<TAB>name."),
    ] = None,
    templates: Annotated[
        list[str] | None,
        typer.Option(help="Prompt templates file ([DATASET=]FILE): one per line with {c} for the class."),
    ] = None,
    baseline: Annotated[
        Baseline, typer.Option(help="clip: also classify the images with the text encoder's image tower.")
    ] = Baseline.none,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most N images per dataset (stable pick).")
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(help="Caption only shard K/N (0-based) into --captions; default from SLURM array vars."),
    ] = None,
    image_root: Annotated[
        str | None, typer.Option(help="Folder that relative image paths of JSONL inputs are under.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per LVLM / image-encoder batch.")] = 8,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Caption length limit in tokens.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, ...")] = "auto",
    precision: Annotated[str, typer.Option(help="Text encoder precision: fp32, bf16 or fp16.")] = "fp32",
    dtype: Annotated[str, typer.Option(help="LVLM dtype: auto, bf16, fp16 or fp32.")] = "auto",
    chat_template: Annotated[
        str | None,
        typer.Option(help="Jinja chat template (text or file) for an LVLM whose processor has none."),
    ] = None,
    max_pixels: MaxPixelsOpt = None,
    predictions: Annotated[
        str | None,
        typer.Option(help="Also write one JSONL record per image: its caption and top-5 classes per method."),
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Write the JSON lines here instead of stdout.")
    ] = None,
    on_error: Annotated[
        OnError,
        typer.Option(help="On an unreadable image: stop (fail), or leave it out and count it (skip)."),
    ] = OnError.fail,
    quiet: QuietOpt = False,
    progress_every: ProgressEveryOpt = DEFAULT_EVERY,
) -> None:
    """clipdpo eval-zeroshot --dataset all --data-root data/ --model out/ --captions caps.jsonl > zs.jsonl

    Each image is captioned by the LVLM ("describe the main object"), the caption is embedded with a
    SigLIP text encoder and given the class whose prompt prototype is most similar (text to text), as in
    the paper's Table 3. Writes one JSON line per dataset (top-1, top-5, mean per-class recall, in %)
    plus an average line, and a Table-3-like table on stderr. Captions are cached in --captions, so
    another --text-encoder re-scores them without regeneration; --baseline clip adds the usual CLIP
    zero-shot numbers of the text encoder's own image tower.
    """
    from clipdpo_cli.eval.zeroshot.cli_support import run_command

    run_command(
        inputs=inputs or [], datasets=dataset or [], data_root=data_root, split=split, model=model,
        text_encoder=text_encoder, prompt=prompt, captions=captions or [], classnames=classnames or [],
        templates=templates or [], baseline=baseline.value, limit=limit, shard=shard, image_root=image_root,
        batch_size=batch_size, max_new_tokens=max_new_tokens, device=device, precision=precision,
        dtype=dtype, chat_template=chat_template, max_pixels=max_pixels, predictions=predictions,
        output=output, on_error=on_error.value, quiet=quiet, progress_every=progress_every,
        log=lambda msg: print(f"clipdpo {NAME}: {msg}", file=sys.stderr, flush=True),
    )  # fmt: skip
