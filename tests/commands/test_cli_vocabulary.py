"""One vocabulary across the commands: `-m` for the model a command runs, required options declared
required (shown so in --help, and a usage error before anything loads)."""

from __future__ import annotations

import re

import click
import pytest
import typer

from clipdpo_cli.cli import build_app
from tests.conftest import run_in_process


def commands() -> dict[str, object]:
    return typer.main.get_command(build_app()).commands


MODEL_COMMANDS = [name for name, cmd in commands().items() if any(p.name == "model" for p in cmd.params)]


def test_the_model_commands_are_the_expected_ones():
    assert sorted(MODEL_COMMANDS) == sorted(
        ["caption", "ask", "perturb", "score", "categorize", "respond", "train", "ref-logps", "eval-amber",
         "eval-pope", "eval-chair", "eval-zeroshot"]
    )


@pytest.mark.parametrize("name", MODEL_COMMANDS)
def test_every_model_option_is_also_dash_m(name):
    (model,) = [p for p in commands()[name].params if p.name == "model"]
    assert model.opts == ["--model", "-m"] or sorted(model.opts) == ["--model", "-m"]


def test_eval_zeroshot_keeps_m_for_the_lvlm_and_the_text_encoder_long():
    params = {p.name: p for p in commands()["eval-zeroshot"].params}
    assert "-m" in params["model"].opts and params["text_encoder"].opts == ["--text-encoder"]


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_required_option_says_so_in_help(name):
    required = [p for p in commands()[name].params if p.required and isinstance(p, click.Option)]
    help_text = run_in_process(name, "--help").stdout
    for param in required:
        options = help_text.split("\nOptions:\n", 1)[1]
        long = max(param.opts, key=len)
        entry = re.search(rf"^  (?:-\w, )?{long} .*?(?=^  -|\Z)", options, re.S | re.M)
        assert entry is not None and "[required]" in entry.group(0), f"{name} {long}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("eval-amber", "--responses", "r.json", "-m", "no/such-model"), "Missing option '--amber-root'"),
        (("train", "pairs.jsonl"), "--model is required (or model / model_name_or_path in --config)"),
    ],
)
def test_a_missing_required_option_is_a_usage_error_before_anything_runs(args, message):
    r = run_in_process(*args)
    assert r.returncode == 2 and message in r.stderr and r.stdout == ""
