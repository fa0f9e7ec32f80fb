"""`clipdpo train`: DPO fine-tuning of an LVLM on pair records (paper Sec. 3.2 and 5), with TRL."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer

from clipdpo_cli.commands.generation import MaxPixelsOpt
from clipdpo_cli.commands.options import OnError, OnErrorOpt, ProgressEveryOpt, QuietOpt
from clipdpo_cli.commands.settings_options import settings_options
from clipdpo_cli.train import settings as train_settings
from clipdpo_cli.train.settings import TrainSettings

NAME = "train"
SUMMARY = (
    "DPO fine-tuning of the LVLM on pairs (TRL; accelerate / DeepSpeed ZeRO-3; DPO, IPO, SLiC, cDPO, KTO)."
)

SHARED = {"quiet": QuietOpt, "progress_every": ProgressEveryOpt, "max_pixels": MaxPixelsOpt}

# The command's own options (the training options are TrainSettings' fields: train/settings.py)
PairsArg = Annotated[
    str, typer.Argument(metavar="PAIRS", help="Pair records (JSONL from `clipdpo pair`; .gz ok).")
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace the clipdpo run already in --output-dir (what it wrote, its checkpoints too; "
        "recorded in .clipdpo-run.json), once every check passed.",
    ),
]
ConfigOpt = Annotated[
    str | None,
    typer.Option(
        help="YAML file: these options by name, TRL DPOConfig/KTOConfig fields, and a `trl dpo` recipe's "
        "model_name_or_path, use_peft, lora_r, ... (docs/training.md); typed options win."
    ),
]
NumProcessesOpt = Annotated[
    int | None, typer.Option(help="Processes in all (GPUs); >1 re-launches under accelerate.")
]
NumMachinesOpt = Annotated[int | None, typer.Option(help="Machines (default: SLURM_NNODES or 1).")]
MachineRankOpt = Annotated[int | None, typer.Option(help="This machine's rank (default: SLURM_NODEID).")]
MainProcessIpOpt = Annotated[str | None, typer.Option(help="Rank-0 machine address (default: MASTER_ADDR).")]
MainProcessPortOpt = Annotated[int | None, typer.Option(help="Rendezvous port (default: MASTER_PORT).")]
AccelerateConfigOpt = Annotated[
    str | None,
    typer.Option(
        help="An `accelerate config` YAML to launch with, or one TRL ships by name: zero1, zero2, zero3, "
        "fsdp1, fsdp2, multi_gpu (default: your `accelerate config` file, if any)."
    ),
]
WriteRefLogpsOpt = Annotated[
    str | None, typer.Option(hidden=True, help="Moved: `clipdpo ref-logps PAIRS -m MODEL -o FILE`.")
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Check the pairs, encode the first --dump-rows of them, stop (no model load)."
    ),
]
DumpEncodedOpt = Annotated[
    str | None,
    typer.Option(
        help="With --dry-run: write those rows as trained (prompt/chosen/rejected ids and tokens) "
        "to this JSONL file ('-' stdout).",
        show_default=False,
    ),
]
DumpRowsOpt = Annotated[
    int | None, typer.Option(min=1, help="How many pairs --dry-run encodes [default: 8].", show_default=False)
]


@settings_options(train_settings.options(), SHARED)
def command(
    ctx: typer.Context,
    pairs: PairsArg,
    settings: dict[str, Any],
    overwrite: OverwriteOpt = False,
    config: ConfigOpt = None,
    num_processes: NumProcessesOpt = None,
    num_machines: NumMachinesOpt = None,
    machine_rank: MachineRankOpt = None,
    main_process_ip: MainProcessIpOpt = None,
    main_process_port: MainProcessPortOpt = None,
    accelerate_config: AccelerateConfigOpt = None,
    write_ref_logps: WriteRefLogpsOpt = None,
    on_error: OnErrorOpt = OnError.fail,
    dry_run: DryRunOpt = False,
    dump_encoded: DumpEncodedOpt = None,
    dump_rows: DumpRowsOpt = None,
) -> None:
    """clipdpo train pairs.jsonl --model llava-hf/llava-1.5-7b-hf --deepspeed zero3 --output-dir out/

    DPO fine-tuning with TRL on {image, prompt, chosen, rejected} pairs, the paper's hyperparameters by
    default (1 epoch, AdamW, lr 5e-7 cosine to 0, warm-up 0.01, no weight decay, batch 256, beta 0.1).
    --num-processes / --deepspeed / --accelerate-config re-launch under `accelerate launch`. Prints a JSON
    summary on stdout; the model and processor are saved to --output-dir.
    """
    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.train import launcher

    check_moved_and_paired_options(write_ref_logps, dry_run, dump_encoded, dump_rows)
    skip_bad = on_error == OnError.skip
    recipe = read_config(config)
    typed = typed_options(ctx)
    settings = {**settings, **{k: v for k, v in recipe.options.items() if k not in typed}}
    if settings["model"] is None:
        raise UsageError("--model is required (or model / model_name_or_path in --config)")
    if dry_run:
        return dry_run_command(pairs, settings, skip_bad, dump_encoded, dump_rows or 8)
    if settings["output_dir"] is None:
        raise UsageError("--output-dir is required (where the trained model is saved)")
    train = TrainSettings(
        pairs=pairs, **settings, skip_bad=skip_bad, overwrite=overwrite, extra=recipe.trl,
        explicit=train_settings.typed_fields(typed),
    )  # fmt: skip
    train = preflight(train)
    plan = launcher.plan_from_options(
        num_processes, num_machines, machine_rank, main_process_ip, main_process_port, accelerate_config,
        train.deepspeed,
    )  # fmt: skip
    if launcher.needs_relaunch(plan):
        raise typer.Exit(launcher.relaunch(plan, original_argv()))
    run_here(train)


def check_moved_and_paired_options(
    write_ref_logps: str | None, dry_run: bool, dump_encoded: str | None, dump_rows: int | None
) -> None:
    """--write-ref-logps (now its own command), and the options that go with --dry-run only."""
    from clipdpo_cli.io.errors import UsageError

    if write_ref_logps is not None:
        raise UsageError(
            "--write-ref-logps is now its own command: clipdpo ref-logps PAIRS -m MODEL -o FILE "
            "(with --shard, --resume, --on-error like every stage)"
        )
    if (dump_encoded is not None or dump_rows is not None) and not dry_run:
        raise UsageError("--dump-encoded and --dump-rows go with --dry-run")


def run_here(train: TrainSettings) -> None:
    """Train in this process (one of those accelerate launched, or the only one); the JSON summary."""
    from clipdpo_cli.train import launcher

    if train.deepspeed and not launcher.under_launcher():
        launcher.single_process_env()
    from clipdpo_cli.train.trainer import run_training, stdout_to_stderr, summary

    with stdout_to_stderr():  # library chatter (DeepSpeed logs to stdout) must not mix with the JSON
        result = run_training(train)
    summary(result, train.quiet)


def preflight(s: TrainSettings) -> TrainSettings:
    """Everything that can be wrong before a model loads (in the process the user started, not again in
    the processes it launches): the output folder, the DeepSpeed config, the trackers, the Hub push.
    Nothing is removed here (--overwrite clears the folder after the model loaded: train/output_dir.py).
    Returns the settings with the DeepSpeed config file and the checked --report-to."""
    import os

    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.train.deepspeed_configs import resolve_deepspeed
    from clipdpo_cli.train.launcher import LAUNCHED_ENV
    from clipdpo_cli.train.output_dir import output_plan
    from clipdpo_cli.train.publish import check_hub
    from clipdpo_cli.train.reporting import parse_report_to

    if s.save_adapter_only and not s.lora:
        raise UsageError("--save-adapter-only goes with --lora")
    if os.environ.get(LAUNCHED_ENV) != "1":  # launched: the main process checks again before it clears
        output_plan(s)
    trackers = parse_report_to(s.report_to)
    if "report_to" in s.extra and "report_to" not in s.explicit:
        parse_report_to(s.extra["report_to"])  # --config's value is the one used: check it too
    check_hub(s.push_to_hub, s.hub_model_id)
    return dataclasses.replace(
        s, deepspeed=resolve_deepspeed(s.deepspeed), report_to=",".join(trackers) or "none"
    )


def dry_run_command(
    pairs: str, settings: dict[str, Any], skip_bad: bool, dump_encoded: str | None, dump_rows: int
) -> None:
    """--dry-run: the pairs encoded as training would, without loading the model; a JSON summary."""
    import json
    import sys

    from clipdpo_cli.train.dump import run_dry

    train = TrainSettings(pairs=pairs, **{**settings, "output_dir": ""}, skip_bad=skip_bad)
    result = run_dry(train, dump_encoded, dump_rows)
    print(json.dumps(result), file=sys.stderr if dump_encoded == "-" else sys.stdout, flush=True)


def original_argv() -> list[str]:
    """This command's own arguments as typed (`train ...`), for the re-launch."""
    import sys

    from clipdpo_cli.io.errors import UsageError

    argv = sys.argv[1:]
    if NAME not in argv:
        raise UsageError("cannot re-launch: run `clipdpo train ...` from a shell to use several processes")
    return argv[argv.index(NAME) :]


def read_config(path: str | None) -> Any:
    """The --config file (train.recipe): option values and TRL config fields."""
    from clipdpo_cli.train.recipe import read_config as read

    return read(path)


def typed_options(ctx: typer.Context) -> set[str]:
    """The options the user typed on the command line (they win over --config).

    Compared by name: typer ships its own copy of click, whose ParameterSource is not click's.
    """
    typed = set()
    for option in train_settings.options():
        source = ctx.get_parameter_source(option.name)
        if source is not None and source.name == "COMMANDLINE":
            typed.add(option.name)
    return typed
