"""`clipdpo train --num-processes N` / `--deepspeed CFG` as typed: re-launch under `accelerate launch`.

The command runs in the user's single process first. When it needs several processes (or machines, or an
accelerate config file), it re-executes itself as `python -m accelerate.commands.launch ... -m clipdpo_cli
train <the same arguments>`, with CLIPDPO_LAUNCHED=1 so that the children train instead of launching again.
Under SLURM, the machine count, this machine's rank and the rendezvous address default to the variables the
accelerate SLURM examples use: SLURM_NNODES, SLURM_NODEID, MASTER_ADDR and MASTER_PORT.

DeepSpeed with one process needs no launcher, only the distributed variables DeepSpeed reads (otherwise it
tries MPI discovery): `single_process_env` sets them in-process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clipdpo_cli.io.errors import UsageError

LAUNCHED_ENV = "CLIPDPO_LAUNCHED"


@dataclass(frozen=True)
class LaunchPlan:
    num_processes: int = 1
    num_machines: int = 1
    machine_rank: int = 0
    main_process_ip: str | None = None
    main_process_port: int | None = None
    accelerate_config: str | None = None
    deepspeed: str | None = None


def under_launcher(env: Mapping[str, str] = os.environ) -> bool:
    """True in a process that accelerate / torchrun / deepspeed started (or that we re-launched)."""
    return env.get(LAUNCHED_ENV) == "1" or ("LOCAL_RANK" in env and "WORLD_SIZE" in env)


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
    processes = num_processes if num_processes is not None else machines
    if processes < 1 or machines < 1:
        raise UsageError("--num-processes and --num-machines must be at least 1")
    if processes % machines:
        raise UsageError(
            f"--num-processes ({processes}, all machines together) must be a multiple of "
            f"--num-machines ({machines})"
        )
    if machines > 1 and not ip:
        raise UsageError("several machines need --main-process-ip (or MASTER_ADDR) of the machine of rank 0")
    for path, what in ((accelerate_config, "--accelerate-config"), (deepspeed, "--deepspeed")):
        if path is not None and not os.path.isfile(path):
            raise UsageError(f"{what} file not found: {path}")
    return LaunchPlan(processes, machines, rank, ip, port, accelerate_config, deepspeed)


def needs_relaunch(plan: LaunchPlan, env: Mapping[str, str] = os.environ) -> bool:
    if under_launcher(env):
        return False
    return plan.num_processes > 1 or plan.num_machines > 1 or plan.accelerate_config is not None


def launch_command(plan: LaunchPlan, argv: Sequence[str], python: str = sys.executable) -> list[str]:
    """The `accelerate launch` command line that runs `clipdpo <argv>` in every process."""
    cmd = [python, "-m", "accelerate.commands.launch"]
    if plan.accelerate_config:
        cmd += ["--config_file", plan.accelerate_config]
    if plan.num_processes > 1 or plan.num_machines > 1:
        cmd += ["--multi_gpu"]  # torch.distributed.run: one process per rank (gloo on CPU, nccl on GPU)
    cmd += ["--num_processes", str(plan.num_processes), "--num_machines", str(plan.num_machines)]
    if plan.num_machines > 1:
        cmd += ["--machine_rank", str(plan.machine_rank), "--rdzv_backend", "c10d"]
    if plan.main_process_ip:
        cmd += ["--main_process_ip", plan.main_process_ip]
    cmd += ["--main_process_port", str(plan.main_process_port or free_port())]
    cmd += ["--mixed_precision", "no", "--dynamo_backend", "no"]  # the trainer sets precision itself
    cmd += ["-m", "clipdpo_cli", *argv]
    return cmd


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def relaunch(plan: LaunchPlan, argv: Sequence[str]) -> int:
    """Run the launch and return its exit code (the children print their own errors)."""
    cmd = launch_command(plan, argv)
    env = dict(os.environ)
    env[LAUNCHED_ENV] = "1"
    print(
        f"clipdpo train: launching {plan.num_processes} process(es) on {plan.num_machines} machine(s) "
        "with accelerate",
        file=sys.stderr,
        flush=True,
    )
    return subprocess.call(cmd, env=env)


def single_process_env(env: dict[str, str] | None = None) -> None:
    """Distributed variables for a one-process DeepSpeed run that no launcher started."""
    target = os.environ if env is None else env
    if "RANK" in target and "WORLD_SIZE" in target:
        return
    target.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"})
    target.setdefault("MASTER_ADDR", "127.0.0.1")
    target.setdefault("MASTER_PORT", str(free_port()))
