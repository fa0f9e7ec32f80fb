"""`clipdpo train`: DPO fine-tuning of an LVLM on pair records (paper Sec. 3.2 and 5), with TRL."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer

from clipdpo_cli.commands.generation import MaxPixelsOpt
from clipdpo_cli.commands.options import OnError, ProgressEveryOpt, QuietOpt
from clipdpo_cli.commands.values import optional_int
from clipdpo_cli.io.progress import DEFAULT_EVERY

NAME = "train"
SUMMARY = (
    "DPO fine-tuning of the LVLM on pairs (TRL; accelerate / DeepSpeed ZeRO-3; DPO, IPO, SLiC, cDPO, KTO)."
)

# Command-line options and the TRL config fields they set: an option typed on the command line wins over
# the same field in --config FILE, which wins over the option's default.
OPTION_FIELDS: dict[str, tuple[str, ...]] = {
    "loss": ("loss_type",),
    "beta": ("beta",),
    "label_smoothing": ("label_smoothing",),
    "learning_rate": ("learning_rate",),
    "epochs": ("num_train_epochs",),
    "max_steps": ("max_steps",),
    "batch_size": ("gradient_accumulation_steps",),
    "per_device_batch_size": ("per_device_train_batch_size", "gradient_accumulation_steps"),
    "warmup_ratio": ("warmup_steps",),
    "weight_decay": ("weight_decay",),
    "lr_scheduler": ("lr_scheduler_type",),
    "precision": ("bf16", "fp16"),
    "gradient_checkpointing": ("gradient_checkpointing",),
    "seed": ("seed",),
    "report_to": ("report_to",),
    "logging_steps": ("logging_steps",),
    "save_steps": ("save_steps",),
    "num_workers": ("dataloader_num_workers",),
    "deepspeed": ("deepspeed",),
}


class RefMode(str, enum.Enum):
    auto = "auto"
    live = "live"
    precomputed = "precomputed"


def command(
    ctx: typer.Context,
    pairs: Annotated[
        str, typer.Argument(metavar="PAIRS", help="Pair records (JSONL from `clipdpo pair`; .gz ok).")
    ],
    model: Annotated[
        str, typer.Option(help="Model to start from: Hub id or local directory (also the reference).")
    ],
    output_dir: Annotated[
        str | None, typer.Option(help="Where the trained model, processor and checkpoints go.")
    ] = None,
    loss: Annotated[
        str,
        typer.Option(help="dpo | ipo | slic | cdpo | kto, or any TRL DPO loss_type by name (e.g. robust)."),
    ] = "dpo",
    beta: Annotated[float, typer.Option(help="KL strength beta (IPO: tau). Paper: 0.1.")] = 0.1,
    label_smoothing: Annotated[
        float | None,
        typer.Option(help="Label-noise rate e for cdpo (default 0.1, paper) / robust / exo_pair."),
    ] = None,
    learning_rate: Annotated[float, typer.Option(help="Peak AdamW learning rate (paper: 5e-7).")] = 5e-7,
    epochs: Annotated[float, typer.Option(help="Epochs over the pairs (paper: 1).")] = 1.0,
    max_steps: Annotated[
        int, typer.Option(help="Stop after this many optimizer steps (overrides --epochs).")
    ] = -1,
    batch_size: Annotated[
        int, typer.Option(help="Effective batch: per-device x processes x accumulation (paper: 256).")
    ] = 256,
    per_device_batch_size: Annotated[int, typer.Option(help="Pairs per process per forward pass.")] = 8,
    warmup_ratio: Annotated[
        float, typer.Option(help="Linear warm-up, fraction of steps (paper: 0.01).")
    ] = 0.01,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay (paper: 0).")] = 0.0,
    lr_scheduler: Annotated[
        str, typer.Option(help="LR schedule after warm-up (paper: cosine to 0).")
    ] = "cosine",
    max_length: Annotated[
        str, typer.Option(help="Cut prompt+answer to this many TEXT tokens; image tokens are never cut.")
    ] = "none",
    precision: Annotated[
        str, typer.Option(help="auto (bf16 on a GPU with it, else fp32) | fp32 | bf16 | fp16.")
    ] = "auto",
    gradient_checkpointing: Annotated[
        bool,
        typer.Option(
            "--gradient-checkpointing/--no-gradient-checkpointing", help="Trade compute for memory."
        ),
    ] = True,
    lora: Annotated[
        bool, typer.Option("--lora", help="Train a LoRA adapter (peft), merged into the saved model.")
    ] = False,
    save_adapter_only: Annotated[
        bool, typer.Option("--save-adapter-only", help="With --lora: save the adapter alone, not merged.")
    ] = False,
    lora_r: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    lora_alpha: Annotated[int, typer.Option(help="LoRA alpha.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed for shuffling, dropout and init.")] = 0,
    report_to: Annotated[
        str,
        typer.Option(help="Metrics besides stderr: none, tensorboard, wandb, or a,b (checked first)."),
    ] = "none",
    logging_steps: Annotated[int, typer.Option(help="Log metrics every N optimizer steps.")] = 10,
    save_steps: Annotated[int, typer.Option(help="Save a checkpoint every N optimizer steps.")] = 500,
    resume_from_checkpoint: Annotated[
        str | None,
        typer.Option(help="Continue from a checkpoint folder in --output-dir ('last' for the latest)."),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace the run already in --output-dir (its checkpoints too)."),
    ] = False,
    push_to_hub: Annotated[
        bool, typer.Option("--push-to-hub", help="Upload the saved model folder to the Hugging Face Hub.")
    ] = False,
    hub_model_id: Annotated[
        str | None, typer.Option(help="Hub repository (NAME or OWNER/NAME; default: --output-dir's name).")
    ] = None,
    config: Annotated[
        str | None, typer.Option(help="YAML file with more TRL DPOConfig/KTOConfig fields.")
    ] = None,
    deepspeed: Annotated[
        str | None, typer.Option(help="DeepSpeed config: zero2 / zero3 (shipped in clipdpo) or a JSON file.")
    ] = None,
    num_processes: Annotated[
        int | None, typer.Option(help="Processes in all (GPUs); >1 re-launches under accelerate.")
    ] = None,
    num_machines: Annotated[int | None, typer.Option(help="Machines (default: SLURM_NNODES or 1).")] = None,
    machine_rank: Annotated[
        int | None, typer.Option(help="This machine's rank (default: SLURM_NODEID).")
    ] = None,
    main_process_ip: Annotated[
        str | None, typer.Option(help="Rank-0 machine address (default: MASTER_ADDR).")
    ] = None,
    main_process_port: Annotated[
        int | None, typer.Option(help="Rendezvous port (default: MASTER_PORT).")
    ] = None,
    accelerate_config: Annotated[
        str | None, typer.Option(help="An `accelerate config` YAML to launch with.")
    ] = None,
    ref_logps: Annotated[
        RefMode,
        typer.Option(
            help="Reference log-probs: precomputed (from the pairs, no reference model in memory), "
            "live (a frozen reference copy), auto (precomputed when every pair has them)."
        ),
    ] = RefMode.auto,
    ref_model: Annotated[
        str | None, typer.Option(help="Reference model when not the starting --model.")
    ] = None,
    write_ref_logps: Annotated[
        str | None,
        typer.Option(
            help="Do not train: write the pairs plus ref_chosen_logps/ref_rejected_logps of "
            "--ref-model (default --model) to this file ('-' stdout); shardable with --shard."
        ),
    ] = None,
    ref_batch_size: Annotated[int, typer.Option(help="Pairs per forward pass for --write-ref-logps.")] = 8,
    shard: Annotated[str | None, typer.Option(help="With --write-ref-logps: process shard K/N.")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="With --write-ref-logps FILE: skip ids in FILE.")
    ] = False,
    on_error: Annotated[
        OnError, typer.Option(help="A bad pair record: stop (fail) or skip and count it.")
    ] = OnError.fail,
    image_root: Annotated[
        str | None,
        typer.Option(help="Directory that relative image paths start from (default: $CLIPDPO_IMAGE_ROOT)."),
    ] = None,
    chat_template: Annotated[
        str | None,
        typer.Option(help="Jinja chat template (file) for a processor without one; saved with the model."),
    ] = None,
    num_workers: Annotated[int, typer.Option(help="DataLoader workers that open and process images.")] = 2,
    max_pixels: MaxPixelsOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Check the pairs, encode the first --dump-rows of them, stop (no model load)."
        ),
    ] = False,
    dump_encoded: Annotated[
        str | None,
        typer.Option(
            help="With --dry-run: write those rows as trained (prompt/chosen/rejected ids and tokens) "
            "to this JSONL file ('-' stdout).",
            show_default=False,
        ),
    ] = None,
    dump_rows: Annotated[
        int | None,
        typer.Option(min=1, help="How many pairs --dry-run encodes [default: 8].", show_default=False),
    ] = None,
    quiet: QuietOpt = False,
    progress_every: ProgressEveryOpt = DEFAULT_EVERY,
) -> None:
    """clipdpo train pairs.jsonl --model llava-hf/llava-1.5-7b-hf --deepspeed zero3 --output-dir out/

    DPO fine-tuning with TRL on {image, prompt, chosen, rejected} pairs, the paper's hyperparameters by
    default (1 epoch, AdamW, lr 5e-7 cosine to 0, warm-up 0.01, no weight decay, batch 256, beta 0.1).
    --num-processes / --deepspeed / --accelerate-config re-launch under `accelerate launch`. Prints a JSON
    summary on stdout; the model and processor are saved to --output-dir.
    """
    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.train import launcher

    max_text = optional_int(max_length, "--max-length")
    if (dump_encoded is not None or dump_rows is not None) and not dry_run:
        raise UsageError("--dump-encoded and --dump-rows go with --dry-run")
    if dry_run:
        return dry_run_command(
            pairs, model, max_text, image_root, chat_template, max_pixels, on_error, dump_encoded,
            dump_rows or 8,
        )  # fmt: skip
    if write_ref_logps is not None:
        return write_reference(
            pairs,
            ref_model or model,
            write_ref_logps,
            max_text,
            precision,
            ref_batch_size,
            shard,
            resume,
            on_error.value,
            image_root,
            chat_template,
            max_pixels,
            quiet,
            progress_every,
        )
    if output_dir is None:
        raise UsageError("--output-dir is required (where the trained model is saved)")
    extra, explicit = read_config(config), explicit_fields(ctx)
    deepspeed, report_to = preflight(
        output_dir, overwrite, resume_from_checkpoint, deepspeed, report_to, extra, explicit, push_to_hub,
        hub_model_id, lora, save_adapter_only,
    )  # fmt: skip
    plan = launcher.plan_from_options(
        num_processes,
        num_machines,
        machine_rank,
        main_process_ip,
        main_process_port,
        accelerate_config,
        deepspeed,
    )
    if launcher.needs_relaunch(plan):
        raise typer.Exit(launcher.relaunch(plan, original_argv()))
    if deepspeed and not launcher.under_launcher():
        launcher.single_process_env()

    from clipdpo_cli.train.trainer import TrainSettings, run_training, stdout_to_stderr, summary

    settings = TrainSettings(
        pairs=pairs, model=model, output_dir=output_dir, loss=loss, beta=beta,
        label_smoothing=label_smoothing,
        learning_rate=learning_rate, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
        per_device_batch_size=per_device_batch_size, warmup_ratio=warmup_ratio, weight_decay=weight_decay,
        lr_scheduler=lr_scheduler, max_length=max_text, precision=precision,
        gradient_checkpointing=gradient_checkpointing, lora=lora, lora_r=lora_r, lora_alpha=lora_alpha,
        seed=seed, report_to=report_to, logging_steps=logging_steps, save_steps=save_steps,
        resume_from_checkpoint=resume_from_checkpoint, deepspeed=deepspeed, ref_logps=ref_logps.value,
        ref_model=ref_model, image_root=image_root, skip_bad=on_error == OnError.skip,
        num_workers=num_workers,
        chat_template=chat_template, max_pixels=max_pixels, quiet=quiet, progress_every=progress_every,
        save_adapter_only=save_adapter_only, push_to_hub=push_to_hub, hub_model_id=hub_model_id,
        extra=extra, explicit=explicit,
    )  # fmt: skip
    with stdout_to_stderr():  # library chatter (DeepSpeed logs to stdout) must not mix with the JSON
        result = run_training(settings)
    summary(result, quiet)


def preflight(
    output_dir: str, overwrite: bool, resume_from_checkpoint: str | None, deepspeed: str | None,
    report_to: str, extra: dict[str, Any], explicit: frozenset[str], push_to_hub: bool,
    hub_model_id: str | None, lora: bool, save_adapter_only: bool,
) -> tuple[str | None, str]:  # fmt: skip
    """Everything that can be wrong before a model loads (in the process the user started, not again in
    the processes it launches): the output folder, the DeepSpeed config, the trackers, the Hub push.
    Returns the DeepSpeed config file and the checked --report-to."""
    import os

    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.train.deepspeed_configs import resolve_deepspeed
    from clipdpo_cli.train.launcher import LAUNCHED_ENV
    from clipdpo_cli.train.output_dir import check_output_dir
    from clipdpo_cli.train.publish import check_hub
    from clipdpo_cli.train.reporting import parse_report_to

    if save_adapter_only and not lora:
        raise UsageError("--save-adapter-only goes with --lora")
    if os.environ.get(LAUNCHED_ENV) != "1":
        check_output_dir(output_dir, overwrite, resume_from_checkpoint)
    trackers = parse_report_to(report_to)
    if "report_to" in extra and "report_to" not in explicit:
        parse_report_to(extra["report_to"])  # --config's value is the one used: check it too
    check_hub(push_to_hub, hub_model_id)
    return resolve_deepspeed(deepspeed), ",".join(trackers) or "none"


def write_reference(
    pairs: str, model: str, output: str, max_text: int | None, precision: str, batch_size: int,
    shard: str | None, resume: bool, on_error: str, image_root: str | None, chat_template: str | None,
    max_pixels: int | None, quiet: bool, progress_every: float = DEFAULT_EVERY,
) -> None:  # fmt: skip
    """The --write-ref-logps pass: a record stage over the pairs."""
    from clipdpo_cli.io.runner import IOOptions, run_stage
    from clipdpo_cli.train.refcache import RefScorer, add_ref_logps

    io = IOOptions(
        input=pairs,
        output=None if output == "-" else output,
        quiet=quiet,
        on_error=on_error,
        shard=shard,
        resume=resume,
        progress_every=progress_every,
    )
    scorer = RefScorer(
        model, max_length=max_text, precision=precision, chat_template=chat_template, max_pixels=max_pixels
    )
    run_stage(
        f"{NAME} --write-ref-logps",
        io,
        lambda records, ctx: add_ref_logps(records, scorer, ctx, batch_size, image_root),
        one_to_one=True,
    )


def dry_run_command(
    pairs: str, model: str, max_text: int | None, image_root: str | None, chat_template: str | None,
    max_pixels: int | None, on_error: OnError, dump_encoded: str | None, dump_rows: int,
) -> None:  # fmt: skip
    """--dry-run: the pairs encoded as training would, without loading the model; a JSON summary."""
    import json
    import sys

    from clipdpo_cli.train.dump import run_dry
    from clipdpo_cli.train.trainer import TrainSettings

    settings = TrainSettings(
        pairs=pairs, model=model, output_dir="", max_length=max_text, image_root=image_root,
        skip_bad=on_error == OnError.skip, chat_template=chat_template, max_pixels=max_pixels,
    )  # fmt: skip
    result = run_dry(settings, dump_encoded, dump_rows)
    print(json.dumps(result), file=sys.stderr if dump_encoded == "-" else sys.stdout, flush=True)


def original_argv() -> list[str]:
    """This command's own arguments as typed (`train ...`), for the re-launch."""
    import sys

    from clipdpo_cli.io.errors import UsageError

    argv = sys.argv[1:]
    if NAME not in argv:
        raise UsageError("cannot re-launch: run `clipdpo train ...` from a shell to use several processes")
    return argv[argv.index(NAME) :]


def read_config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    from clipdpo_cli.io.errors import InputError

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        raise InputError(f"--config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"--config {path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"--config {path}: must be a mapping of DPOConfig fields")
    return data


def explicit_fields(ctx: typer.Context) -> frozenset[str]:
    """Config fields set by options the user typed (they win over --config).

    Compared by name: typer ships its own copy of click, whose ParameterSource is not click's.
    """
    fields: set[str] = set()
    for option, names in OPTION_FIELDS.items():
        source = ctx.get_parameter_source(option)
        if source is not None and source.name == "COMMANDLINE":
            fields.update(names)
    return frozenset(fields)
