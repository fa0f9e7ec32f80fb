"""`clipdpo train --num-processes N` / `--accelerate-config CFG` as typed: re-launch through accelerate's own
launcher API, as TRL's CLI does (trl/cli/accelerate_launcher.py).

The command runs in the user's single process first. When it needs several processes (or machines, or an
accelerate config), it builds the arguments of `accelerate launch ... -m clipdpo_cli train <the same
arguments>`, parses them with accelerate's `launch_command_parser` and runs accelerate's `launch_command` in
this process, with CLIPDPO_LAUNCHED=1 so that the children train instead of launching again.

Only what the user asked for is passed, so an accelerate config decides the rest as `accelerate launch`
would: `--accelerate-config FILE`, or a name TRL ships (zero1, zero2, zero3, fsdp1, fsdp2, multi_gpu,
single_gpu; trl/accelerate_configs, resolved by TRL's own resolve_accelerate_config_argument), else the
user's `accelerate config` default file. A typed `--num-processes` / `--num-machines` wins over the config.
Without any config, several processes get accelerate's `--multi_gpu` (torch.distributed.run: gloo on CPU,
nccl on GPU), mixed precision and dynamo "no" (the trainer sets precision itself).
Under SLURM, the machine count, this machine's rank and the rendezvous address default to the variables the
accelerate SLURM examples use: SLURM_NNODES, SLURM_NODEID, MASTER_ADDR and MASTER_PORT.

DeepSpeed with one process needs no launcher, only the distributed variables DeepSpeed reads (otherwise it
tries MPI discovery): `single_process_env` sets them in-process.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.io.log import info

LAUNCHED_ENV = "CLIPDPO_LAUNCHED"


@dataclass(frozen=True)
class LaunchPlan:
    num_processes: int | None = 1  # None: the accelerate config's
    num_machines: int = 1
    machine_rank: int = 0
    main_process_ip: str | None = None
    main_process_port: int | None = None
    accelerate_config: str | None = None  # a file, or a config TRL ships by name (resolved)
    deepspeed: str | None = None


def under_launcher(env: Mapping[str, str] = os.environ) -> bool:
    """True in a process that accelerate / torchrun / deepspeed started (or that we re-launched)."""
    return env.get(LAUNCHED_ENV) == "1" or ("LOCAL_RANK" in env and "WORLD_SIZE" in env)


def named_configs() -> list[str]:
    """The accelerate configs TRL ships (`--accelerate-config zero3`)."""
    from importlib import resources

    folder = resources.files("trl.accelerate_configs")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_accelerate_config(value: str | None) -> str | None:
    """A config file as given, or the path of a config TRL ships by that name; UsageError otherwise."""
    if value is None:
        return None
    if os.path.isdir(value):
        raise UsageError(f"--accelerate-config {value} is a folder: pass an `accelerate config` YAML file")
    from trl.cli.accelerate_config import resolve_accelerate_config_argument

    try:
        return resolve_accelerate_config_argument(["--accelerate_config", value])[1]
    except ValueError:
        names = ", ".join(named_configs())
        message = f"--accelerate-config file not found: {value} (or name one TRL ships: {names})"
        raise UsageError(message) from None


def plan_from_options(
    num_processes: int | None,
    num_machines: int | None,
    machine_rank: int | None,
    main_process_ip: str | None,
    main_process_port: int | None,
    accelerate_config: str | None,
    deepspeed: str | None,
    env: Mapping[str, str] = os.environ,
) -> LaunchPlan:
    """The launch the options ask for; unset multi-node values come from SLURM / MASTER_* variables."""
    machines = num_machines if num_machines is not None else int(env.get("SLURM_NNODES", "1") or 1)
    rank = machine_rank if machine_rank is not None else int(env.get("SLURM_NODEID", "0") or 0)
    ip = main_process_ip or env.get("MASTER_ADDR") or None
    port = main_process_port or (int(env["MASTER_PORT"]) if env.get("MASTER_PORT") else None)
    config = resolve_accelerate_config(accelerate_config)
    processes = num_processes if num_processes is not None else (None if config else machines)
    if (processes is not None and processes < 1) or machines < 1:
        raise UsageError("--num-processes and --num-machines must be at least 1")
    if processes is not None and processes % machines:
        raise UsageError(
            f"--num-processes ({processes}, all machines together) must be a multiple of "
            f"--num-machines ({machines})"
        )
    if machines > 1 and not ip:
        raise UsageError("several machines need --main-process-ip (or MASTER_ADDR) of the machine of rank 0")
    if deepspeed is not None and not os.path.isfile(deepspeed):
        raise UsageError(f"--deepspeed file not found: {deepspeed}")
    return LaunchPlan(processes, machines, rank, ip, port, config, deepspeed)


def needs_relaunch(plan: LaunchPlan, env: Mapping[str, str] = os.environ) -> bool:
    if under_launcher(env):
        return False
    return (plan.num_processes or 1) > 1 or plan.num_machines > 1 or plan.accelerate_config is not None


def config_in_effect(plan: LaunchPlan) -> str | None:
    """The accelerate config file `accelerate launch` reads for this plan: --accelerate-config's, else the
    user's default one (`accelerate config` writes it), else None."""
    if plan.accelerate_config:
        return plan.accelerate_config
    from accelerate.commands import launch

    default = launch.default_config_file
    return default if os.path.isfile(default) else None


def launch_arguments(plan: LaunchPlan, argv: Sequence[str]) -> list[str]:
    """The `accelerate launch` arguments that run `clipdpo <argv>` in every process: what the user asked
    for, and no more where an accelerate config is in effect."""
    config = config_in_effect(plan)
    args: list[str] = ["--config_file", config] if plan.accelerate_config else []
    if plan.num_processes is not None:
        args += ["--num_processes", str(plan.num_processes)]
        if config is None and plan.num_processes > 1:
            args += ["--multi_gpu"]  # torch.distributed.run: one process per rank (gloo on CPU, nccl on GPU)
    if config is None or plan.num_machines > 1:
        args += ["--num_machines", str(plan.num_machines)]
    if plan.num_machines > 1:
        args += ["--machine_rank", str(plan.machine_rank), "--rdzv_backend", "c10d"]
    if plan.main_process_ip:
        args += ["--main_process_ip", plan.main_process_ip]
    port = plan.main_process_port
    if port is None and (config is None or _config_value(config, "main_process_port") is None):
        port = free_port() if plan.num_machines == 1 else None
    if port is not None:
        args += ["--main_process_port", str(port)]
    if config is None:
        args += ["--mixed_precision", "no", "--dynamo_backend", "no"]  # the trainer sets precision itself
    return [*args, "--module", "clipdpo_cli", *argv]


def _config_value(path: str, key: str) -> Any:
    from accelerate.commands.config.config_args import load_config_from_file

    try:
        return getattr(load_config_from_file(path), key, None)
    except Exception:  # accelerate reports a bad config file itself, at launch
        return None


def launch_namespace(plan: LaunchPlan, argv: Sequence[str]) -> Any:
    """accelerate's own parse (`launch_command_parser`) of the launch arguments."""
    from accelerate.commands.launch import launch_command_parser

    return launch_command_parser().parse_args(launch_arguments(plan, argv))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def relaunch(plan: LaunchPlan, argv: Sequence[str]) -> int:
    """Run the launch with accelerate's `launch_command`; its exit code (the children print their errors)."""
    from accelerate.commands.launch import launch_command

    args = launch_namespace(plan, argv)
    os.environ[LAUNCHED_ENV] = "1"
    processes = "the accelerate config's" if plan.num_processes is None else str(plan.num_processes)
    info(
        "train",
        f"launching {processes} process(es) on {plan.num_machines} machine(s) with accelerate"
        + (f" ({os.path.basename(plan.accelerate_config)})" if plan.accelerate_config else ""),
    )
    try:
        launch_command(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except ValueError as exc:  # accelerate's checks of the options and the config: one line
        raise UsageError(f"accelerate launch: {exc}") from None
    except Exception as exc:  # a process failed (ChildFailedError, CalledProcessError): it said why
        return int(getattr(exc, "returncode", 1) or 1)
    finally:
        os.environ.pop(LAUNCHED_ENV, None)
    return 0


def single_process_env(env: dict[str, str] | None = None) -> None:
    """Distributed variables for a one-process DeepSpeed run that no launcher started."""
    target = os.environ if env is None else env
    if "RANK" in target and "WORLD_SIZE" in target:
        return
    target.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"})
    target.setdefault("MASTER_ADDR", "127.0.0.1")
    target.setdefault("MASTER_PORT", str(free_port()))
