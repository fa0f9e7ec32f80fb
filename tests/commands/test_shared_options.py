"""Options shared by the commands are declared once (commands/options.py, generation.py, clip_options.py) and
checked by the parser: a wrong choice is a usage error (exit 2) before anything is read or loaded."""

from __future__ import annotations

import importlib
import re

import pytest
import typer

from clipdpo_cli.cli import COMMAND_MODULES, build_app
from clipdpo_cli.commands import clip_options, generation, options
from tests.conftest import SRC, invoke_cli


def click_commands() -> dict[str, object]:
    return typer.main.get_command(build_app()).commands


def annotations(param: str) -> dict[str, object]:
    """{command: the type annotation of its option `param`} for the commands that have it."""
    return {name: p.type_descriptor.annotation for name, cmd in click_commands().items() for p in cmd.params
            if p.name == param}  # fmt: skip


def test_device_and_on_error_are_one_declaration_each():
    sources = {p.name: p.read_text() for p in (SRC / "clipdpo_cli").rglob("*.py")}
    assert [n for n, s in sources.items() if re.search(r"^DeviceOpt\s*=", s, re.M)] == ["options.py"]
    assert [n for n, s in sources.items() if re.search(r"^class OnError\b", s, re.M)] == ["options.py"]
    device_helps = {
        name: p.help for name, cmd in click_commands().items() for p in cmd.params if p.name == "device"
    }
    assert set(device_helps) >= {
        "caption",
        "ask",
        "perturb",
        "score",
        "categorize",
        "eval-amber",
        "eval-zeroshot",
    }
    assert len(set(device_helps.values())) == 1
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(f"clipdpo_cli.commands.{module_name}")
        assert getattr(module, "OnError", options.OnError) is options.OnError, module_name
    on_error = annotations("on_error")
    assert {"train", "eval-zeroshot", "filter", "caption"} <= set(on_error)
    assert set(on_error.values()) == {options.OnError}
    assert [e.value for e in options.OnError] == ["fail", "skip"]


@pytest.mark.parametrize(
    "option, value",
    [("--dtype", "int4"), ("--precision", "fp8"), ("--on-error", "ignore")],  # CLIP auto: bf16 on a GPU
)
def test_eval_zeroshot_choices_are_checked_by_the_parser(tmp_path, option, value):
    result = invoke_cli(
        "eval-zeroshot", str(tmp_path / "no-such-set"), "--captions", "c.jsonl", option, value
    )
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.stderr and value in result.stderr


def test_every_dtype_and_precision_option_is_the_one_enum():
    dtypes = annotations("dtype")
    assert set(dtypes) == {
        "caption", "ask", "perturb", "score", "respond", "eval-amber", "eval-pope", "eval-chair",
        "eval-zeroshot",
    }  # fmt: skip
    assert set(dtypes.values()) == {generation.Dtype}
    assert [d.value for d in generation.Dtype] == ["auto", "fp32", "bf16", "fp16"]
    precisions = annotations("precision")
    assert {n: precisions[n] for n in ("score", "categorize", "eval-zeroshot")} == dict.fromkeys(
        ("score", "categorize", "eval-zeroshot"), clip_options.Precision
    )
