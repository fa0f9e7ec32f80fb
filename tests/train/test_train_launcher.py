"""The accelerate re-launch: when it happens, its command line, SLURM variables, one-process DeepSpeed."""

from __future__ import annotations

import os

import pytest

from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.train import launcher


def plan(env=None, **kw):
    options = {
        k: kw.get(k)
        for k in (
            "num_processes",
            "num_machines",
            "machine_rank",
            "main_process_ip",
            "main_process_port",
            "accelerate_config",
            "deepspeed",
        )
    }
    return launcher.plan_from_options(**options, env=env or {})


def test_one_process_runs_in_place_and_several_relaunch():
    assert not launcher.needs_relaunch(plan(), env={})
    assert launcher.needs_relaunch(plan(num_processes=2), env={})
    assert not launcher.needs_relaunch(plan(num_processes=2), env={"CLIPDPO_LAUNCHED": "1"})
    assert not launcher.needs_relaunch(plan(num_processes=2), env={"LOCAL_RANK": "0", "WORLD_SIZE": "2"})


def test_launch_command_line():
    p = plan(num_processes=4, main_process_port=29555)
    cmd = launcher.launch_command(
        p, ["train", "pairs.jsonl", "--model", "m", "--num-processes", "4"], python="py"
    )
    assert cmd[:3] == ["py", "-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "4" and "--multi_gpu" in cmd
    assert cmd[cmd.index("--main_process_port") + 1] == "29555"
    assert cmd[-8:] == ["-m", "clipdpo_cli", "train", "pairs.jsonl", "--model", "m", "--num-processes", "4"]
    assert "--machine_rank" not in cmd


def test_slurm_multi_node_variables_are_honoured(tmp_path):
    env = {"SLURM_NNODES": "2", "SLURM_NODEID": "1", "MASTER_ADDR": "node001", "MASTER_PORT": "29600"}
    p = plan(env, num_processes=16)
    assert (p.num_machines, p.machine_rank, p.main_process_ip, p.main_process_port) == (
        2,
        1,
        "node001",
        29600,
    )
    cmd = launcher.launch_command(p, ["train"], python="py")
    for flag, value in (
        ("--num_machines", "2"),
        ("--machine_rank", "1"),
        ("--main_process_ip", "node001"),
        ("--main_process_port", "29600"),
        ("--num_processes", "16"),
    ):
        assert cmd[cmd.index(flag) + 1] == value
    assert plan(env, num_machines=1, machine_rank=0).num_machines == 1  # options win over the variables
    config = tmp_path / "acc.yaml"
    config.write_text("compute_environment: LOCAL_MACHINE\n")
    cmd = launcher.launch_command(plan(accelerate_config=str(config)), ["train"], python="py")
    assert cmd[cmd.index("--config_file") + 1] == str(config)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"num_processes": 3, "num_machines": 2, "main_process_ip": "h"}, "multiple of"),
        ({"num_processes": 4, "num_machines": 2}, "main-process-ip"),
        ({"deepspeed": "/no/such/zero3.json"}, "--deepspeed file not found"),
        ({"num_processes": 0}, "at least 1"),
    ],
)
def test_bad_launch_options(kw, message):
    with pytest.raises(UsageError, match=message):
        plan(**kw)


def test_single_process_env_for_deepspeed():
    env: dict[str, str] = {}
    launcher.single_process_env(env)
    assert env["RANK"] == "0" and env["WORLD_SIZE"] == "1" and env["MASTER_ADDR"] == "127.0.0.1"
    assert int(env["MASTER_PORT"]) > 0
    kept = {"RANK": "3", "WORLD_SIZE": "8"}
    launcher.single_process_env(kept)
    assert kept == {"RANK": "3", "WORLD_SIZE": "8"}


@pytest.mark.parametrize("name, stage", [("zero2", 2), ("zero3", 3)])
def test_shipped_deepspeed_configs_resolve_by_name(name, stage, tmp_path):
    """`--deepspeed zero3` needs no repository checkout: the configs are package data."""
    import json

    from clipdpo_cli.train.deepspeed_configs import resolve_deepspeed

    path = resolve_deepspeed(name)
    assert path.endswith(os.path.join("clipdpo_cli", "data", "deepspeed", f"{name}.json"))
    with open(path) as fh:
        config = json.load(fh)
    assert config["zero_optimization"]["stage"] == stage
    if stage == 3:
        assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size"):
        assert config[key] == "auto"  # filled from the command's options
    own = tmp_path / "mine.json"
    own.write_text("{}")
    assert resolve_deepspeed(str(own)) == str(own) and resolve_deepspeed(None) is None
    with pytest.raises(
        UsageError, match="--deepspeed file not found: zero4 .or name a shipped config: zero2, zero3"
    ):
        resolve_deepspeed("zero4")
