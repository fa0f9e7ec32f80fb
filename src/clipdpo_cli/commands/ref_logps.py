"""`clipdpo ref-logps`: a reference model's log-probs of each pair's answers (training then loads none)."""

from typing import Annotated, Any

import typer

from clipdpo_cli.commands.clip_options import WorkersOpt
from clipdpo_cli.commands.generation import MaxPixelsOpt
from clipdpo_cli.commands.options import DeviceOpt, stage_command
from clipdpo_cli.commands.settings_options import settings_options
from clipdpo_cli.io.runner import IOSettings, run_stage
from clipdpo_cli.train import settings as train_settings

NAME = "ref-logps"
SUMMARY = (
    "Add a reference model's log-probs of chosen and rejected to pairs (then train without a reference)."
)

# The train settings that decide how a pair is encoded: the reference pass must encode it as training does.
ENCODING = ("max_length", "precision", "image_root", "chat_template", "max_pixels")


@stage_command(input_help="Pair records (JSONL from `clipdpo pair`; '-' for stdin; .gz ok).")
@settings_options([f for f in train_settings.options() if f.name in ENCODING], {"max_pixels": MaxPixelsOpt})
def command(
    io: IOSettings,
    settings: dict[str, Any],
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="Reference model: the model training starts from (Hub id or directory)."
        ),
    ],
    batch_size: Annotated[int, typer.Option(min=1, help="Pairs per forward pass.")] = 8,
    device: DeviceOpt = "auto",
    workers: WorkersOpt = 2,
) -> None:
    """clipdpo ref-logps pairs.jsonl -m llava-hf/llava-1.5-7b-hf -o pairs.ref.jsonl

    Each pair plus `ref_chosen_logps`, `ref_rejected_logps` (summed log-probs of each answer under the
    model, encoded exactly as `clipdpo train` encodes it) and `ref_model`. `clipdpo train` on the output
    keeps no frozen reference copy in memory and gives the same loss. Shard it over GPUs with --shard K/N and
    concatenate the shards; reuse it for every run that starts from the same model. Give it the
    --max-length, --image-root, --chat-template and --max-pixels training will use.
    """
    from clipdpo_cli.stages.ref_logps import add_ref_logps
    from clipdpo_cli.train.refcache import RefScorer

    scorer = RefScorer(
        model,
        max_length=settings["max_length"],
        device=device,
        precision=settings["precision"],
        chat_template=settings["chat_template"],
        max_pixels=settings["max_pixels"],
    )
    image_root = settings["image_root"]
    run_stage(
        NAME,
        io,
        lambda records, ctx: add_ref_logps(records, scorer, ctx, batch_size, image_root, workers),
        one_to_one=True,
    )
