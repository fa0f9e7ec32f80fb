"""`clipdpo eval-zeroshot`: caption-based zero-shot classification (paper Sec. 6.2, Table 3)."""

import enum
import sys
from typing import Annotated

import typer

from clipdpo_cli.commands.clip_options import Precision, PrecisionOpt
from clipdpo_cli.commands.generation import Dtype, DtypeOpt, MaxPixelsOpt, engine_options
from clipdpo_cli.commands.options import DeviceOpt, OnError, ProgressEveryOpt, QuietOpt, shard_device
from clipdpo_cli.io.progress import DEFAULT_EVERY
from clipdpo_cli.models.generator import EngineSettings

NAME = "eval-zeroshot"
SUMMARY = "Zero-shot classification from the LVLM's captions, vs. CLIP (paper Sec. 6.2, Table 3)."

# A long-context SigLIP (64 text tokens; the 224 px SO400M SigLIP reads only 16): see docs/zeroshot.md.
DEFAULT_TEXT_ENCODER = "siglip-so400m"


class Baseline(str, enum.Enum):
    none = "none"
    clip = "clip"


@engine_options
def command(
    engine: EngineSettings,
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
        typer.Option(
            "--model",
            "-m",
            help="LVLM that writes the captions (HF id or local folder); not needed when cached.",
        ),
    ] = None,
    text_encoder: Annotated[
        str,
        typer.Option(
            help="CLIP/SigLIP model that embeds captions and class prompts (a `score --model` name: "
            "open_clip alias or name, or transformers:ID_OR_DIR)."
        ),
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
        str | None, typer.Option(help="Folder that relative image paths of JSONL inputs are under (default: "
                               "$CLIPDPO_IMAGE_ROOT, else the JSONL file's folder).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per LVLM / image-encoder batch.")] = 8,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Caption length limit in tokens.")] = 64,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.fp32,
    dtype: DtypeOpt = Dtype.auto,
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
    from clipdpo_cli.eval.zeroshot.pipeline import (
        DEFAULT_PROMPT,
        ZeroshotSettings,
        captions_output,
        evaluate,
        format_table,
    )
    from clipdpo_cli.eval.zeroshot.sets import eval_sets, load_sets
    from clipdpo_cli.io.jsonl import JsonlWriter
    from clipdpo_cli.io.outputs import check_outputs
    from clipdpo_cli.io.shard import Shard

    def log(msg: str) -> None:
        print(f"clipdpo {NAME}: {msg}", file=sys.stderr, flush=True)

    say = (lambda _msg: None) if quiet else log
    written = [(option, path) for option, path in (("-o", output), ("--predictions", predictions)) if path]
    read = [("", path) for path in inputs or []] + [("--captions", path) for path in captions or []]
    check_outputs(written, read)
    loaded = load_sets(inputs or [], dataset or [], data_root, split, image_root)
    sets = eval_sets(loaded, split, classnames or [], templates or [], say)
    settings = ZeroshotSettings(
        model=model,
        text_encoder=text_encoder,
        prompt=prompt or DEFAULT_PROMPT,
        captions=list(captions or []),
        captions_out=captions_output(captions or []),
        use_captions=bool(model or captions),
        baseline=None if baseline is Baseline.none else baseline.value,
        limit=limit,
        shard=Shard.parse(shard),
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        device=shard_device(device, shard, quiet) if model else device,
        precision=precision.value,
        dtype=dtype.value,
        on_error=on_error.value,
        chat_template=chat_template,
        max_pixels=max_pixels,
        engine=engine,
        predictions_out=predictions,
        quiet=quiet,
        progress_every=progress_every,
    )
    results = evaluate(sets, settings, say)
    if results:
        with JsonlWriter(output) as writer:
            for result in results:
                writer.write(result)
        if not quiet:
            log("\n" + format_table(results))
