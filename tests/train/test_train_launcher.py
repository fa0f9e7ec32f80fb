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


@pytest.fixture
def no_default_config(monkeypatch, tmp_path):
    """No `accelerate config` default file (the user's own would change what is passed)."""
    use_default_config(monkeypatch, str(tmp_path / "none" / "default_config.yaml"))


def use_default_config(monkeypatch, path: str) -> None:
    """Point accelerate's default config file (~/.cache/huggingface/accelerate/...) at `path`."""
    from accelerate.commands import launch
    from accelerate.commands.config import config_args

    monkeypatch.setattr(launch, "default_config_file", path)
    monkeypatch.setattr(config_args, "default_config_file", path)


def test_launch_arguments_parsed_by_accelerates_own_parser(no_default_config):
    p = plan(num_processes=4, main_process_port=29555)
    argv = ["train", "pairs.jsonl", "--model", "m", "--num-processes", "4"]
    ns = launcher.launch_namespace(p, argv)
    assert (ns.num_processes, ns.num_machines, ns.main_process_port) == (4, 1, 29555)
    assert ns.multi_gpu and ns.module and ns.training_script == "clipdpo_cli"
    assert ns.training_script_args == argv and ns.config_file is None
    assert (ns.mixed_precision, ns.dynamo_backend, ns.machine_rank) == ("no", "no", None)


def test_slurm_multi_node_variables_are_honoured(no_default_config):
    env = {"SLURM_NNODES": "2", "SLURM_NODEID": "1", "MASTER_ADDR": "node001", "MASTER_PORT": "29600"}
    p = plan(env, num_processes=16)
    assert (p.num_machines, p.machine_rank, p.main_process_ip, p.main_process_port) == (
        2,
        1,
        "node001",
        29600,
    )
    ns = launcher.launch_namespace(p, ["train"])
    assert (ns.num_machines, ns.machine_rank, ns.main_process_ip, ns.main_process_port) == (
        2,
        1,
        "node001",
        29600,
    )
    assert (ns.num_processes, ns.rdzv_backend) == (16, "c10d")
    assert plan(env, num_machines=1, machine_rank=0).num_machines == 1  # options win over the variables


def validated(ns):
    """What accelerate's launch_command would run with: its own validation, which reads the config."""
    from accelerate.commands.launch import _validate_launch_command

    args, defaults, _ = _validate_launch_command(ns)
    return args


def test_an_accelerate_config_file_decides_what_the_options_leave(tmp_path, no_default_config):
    config = tmp_path / "acc.yaml"
    config.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nmixed_precision: bf16\n"
        "num_machines: 1\nnum_processes: 3\nmain_process_port: 29777\ngpu_ids: all\n"
    )
    ns = launcher.launch_namespace(plan(accelerate_config=str(config)), ["train"])
    assert ns.config_file == str(config) and not ns.multi_gpu and ns.num_processes is None
    assert ns.mixed_precision is None and ns.main_process_port is None  # left to the config
    args = validated(ns)
    assert (args.num_processes, args.mixed_precision, args.main_process_port) == (3, "bf16", 29777)
    assert args.multi_gpu  # from the config's distributed_type
    args = validated(
        launcher.launch_namespace(plan(accelerate_config=str(config), num_processes=2), ["train"])
    )
    assert args.num_processes == 2  # a typed --num-processes wins


def test_the_users_default_accelerate_config_is_honoured(tmp_path, monkeypatch):
    """`accelerate config` wrote a default file: no option overrides it (the old argv forced --multi_gpu,
    mixed precision 'no' and a port)."""
    default = tmp_path / "default_config.yaml"
    default.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nmixed_precision: fp16\n"
        "num_machines: 1\nnum_processes: 2\nmain_process_port: 29888\n"
    )
    use_default_config(monkeypatch, str(default))
    ns = launcher.launch_namespace(plan(num_processes=2), ["train"])
    assert ns.config_file is None and not ns.multi_gpu and ns.mixed_precision is None
    args = validated(ns)
    assert (args.multi_gpu, args.mixed_precision, args.main_process_port) == (True, "fp16", 29888)


@pytest.mark.parametrize(
    ("name", "kind", "stage"),
    [("zero2", "use_deepspeed", 2), ("zero3", "use_deepspeed", 3), ("multi_gpu", "multi_gpu", None)],
)
def test_named_configs_are_trls(name, kind, stage, no_default_config):
    p = plan(accelerate_config=name, num_processes=2)
    assert p.accelerate_config.endswith(os.path.join("trl", "accelerate_configs", f"{name}.yaml"))
    assert launcher.needs_relaunch(p, env={})
    args = validated(launcher.launch_namespace(p, ["train"]))
    assert getattr(args, kind) and args.num_processes == 2
    if stage is not None:
        assert int(args.zero_stage) == stage
    assert {"zero2", "zero3", "multi_gpu", "fsdp2"} <= set(launcher.named_configs())


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"num_processes": 3, "num_machines": 2, "main_process_ip": "h"}, "multiple of"),
        ({"num_processes": 4, "num_machines": 2}, "main-process-ip"),
        ({"deepspeed": "/no/such/zero3.json"}, "--deepspeed file not found"),
        (
            {"accelerate_config": "zero4"},
            "--accelerate-config file not found: zero4 .or name one TRL ships: ",
        ),
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
