"""The commands that generate (caption, ask, respond, perturb): their options are their stage settings' fields
and the generation group's (models/generation_settings.py), with `--config FILE`; the group's options are the
same flags, help and defaults in every one of them except the documented differences below."""

import json

import click
import pytest
import typer

from tests.conftest import invoke_cli, run_in_process

GENERATING = ("caption", "ask", "respond", "perturb")
GROUP = (
    "model", "temperature", "top_p", "max_new_tokens", "seed", "batch_size", "device", "dtype",
    "chat_template", "max_pixels", "engine", "base_url", "concurrency", "request_timeout", "retries",
)  # fmt: skip
REQUIRED = object()
# Every way a generating command's group option differs from the group's (docs/architecture.md):
# name -> {command: (default, help differs)}; a command missing from GROUP_OPTIONS[name] lacks the option.
DIFFERENT = {
    "model": {
        "caption": ("llava-hf/llava-1.5-7b-hf", False),
        "ask": ("teknium/OpenHermes-2.5-Mistral-7B", True),
        "respond": (REQUIRED, False),
        "perturb": (None, True),
    },
    "temperature": {"respond": (0.0, False)},
    "top_p": {"respond": (1.0, False)},
    "max_new_tokens": {"caption": (128, False), "respond": (512, False)},
    "batch_size": {"caption": (None, True)},  # auto
    "seed": {"perturb": (None, True)},  # what the rules method does with it
}
WITHOUT = {"max_pixels": ("ask", "perturb")}  # text LLMs


def _params(name: str) -> dict[str, click.Parameter]:
    from clipdpo_cli.cli import build_app

    command = typer.main.get_command(build_app()).commands[name]
    return {p.name: p for p in command.params}


def _default(param: click.Parameter):
    """REQUIRED for a required option: required by the parser, or (with --config) asked for after the file."""
    if param.required or "Required (here or in --config)." in (getattr(param, "help", None) or ""):
        return REQUIRED
    return getattr(param.default, "value", param.default)


def test_the_group_is_one_declaration_in_every_generating_command():
    params = {name: _params(name) for name in GENERATING}
    for option in GROUP:
        having = [c for c in GENERATING if c not in WITHOUT.get(option, ())]
        assert [c for c in GENERATING if option in params[c]] == having, option
        base = params["caption"][option] if option != "max_pixels" else params["respond"][option]
        usual = [c for c in having if c not in DIFFERENT.get(option, {})]
        for command in having:
            p = params[command][option]
            assert p.opts == base.opts, (option, command)
            if command in usual:
                assert (p.help, _default(p)) == (
                    params[usual[0]][option].help,
                    _default(params[usual[0]][option]),
                )
            else:
                default, help_differs = DIFFERENT[option][command]
                assert _default(p) == default, (option, command)
                assert (p.help != params[usual[0]][option].help) == help_differs if usual else True


def test_defaults_are_todays():
    """The defaults each command had before the group (they pass on 3ef099b too), found by flag."""
    expected = {
        "caption": {"--temperature": 0.7, "--top-p": 0.95, "--max-new-tokens": 128, "--batch-size": None,
                    "--workers": 4, "--samples-per-prompt": 1, "--model": "llava-hf/llava-1.5-7b-hf"},
        "ask": {"--temperature": 0.7, "--top-p": 0.95, "--max-new-tokens": 256, "--batch-size": 8,
                "--questions": 2, "--max-captions": 5, "--input-order": "grouped"},
        "respond": {"--temperature": 0.0, "--top-p": 1.0, "--max-new-tokens": 512, "--batch-size": 8,
                    "--workers": 4, "--yes-no": "prob", "--yes-no-max-new-tokens": 8, "--model": REQUIRED},
        "perturb": {"--temperature": 0.7, "--top-p": 0.95, "--max-new-tokens": 256, "--batch-size": 8,
                    "--field": "text", "--types": "existence,attribute,relation", "--method": "rules"},
    }  # fmt: skip
    common = {"--dtype": "auto", "--engine": "hf", "--concurrency": 16, "--request-timeout": 600.0,
              "--retries": 4, "--device": "auto", "--seed": None, "--chat-template": None}  # fmt: skip
    for command, values in expected.items():
        by_flag = {max(p.opts, key=len): p for p in _params(command).values() if p.opts}
        assert {flag: _default(by_flag[flag]) for flag in {**values, **common}} == {**values, **common}


def test_chat_template_help_says_file_or_text_in_every_command():
    from clipdpo_cli.cli import build_app

    helps = {}
    for name, command in typer.main.get_command(build_app()).commands.items():
        for p in command.params:
            if p.name == "chat_template":
                helps[name] = p.help
    helps.pop("eval-zeroshot", None)  # its own wording (eval-zeroshot is converted separately)
    assert {"caption", "ask", "respond", "perturb", "train", "ref-logps", "score"} <= set(helps)
    assert len(set(helps.values())) == 1, helps
    assert "a file or as the template text itself" in helps["caption"]


class _Spy:
    """Stands for the model opener and the stage: records what the command built, writes nothing."""

    def __init__(self):
        self.opened, self.settings = [], []

    def opener(self, model, engine=None, device="auto", dtype="auto", chat_template=None, max_pixels=None):
        self.opened.append(
            {"model": model, "engine": engine.engine, "dtype": dtype, "timeout": engine.timeout}
        )
        return type("Fake", (), {"name": model, "concurrency": None, "device": None})()

    def stage(self, records, *args):
        settings = next(a for a in args if type(a).__name__.endswith("Settings"))
        self.settings.append(settings)
        yield from ()


@pytest.fixture
def spy(monkeypatch):
    from clipdpo_cli import cli
    from clipdpo_cli.models import generator
    from clipdpo_cli.stages import ask, caption, perturb, respond

    if "perturb" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, "perturb"))
    s = _Spy()
    monkeypatch.setattr(generator, "open_image_text_generator", s.opener)
    monkeypatch.setattr(generator, "open_text_generator", s.opener)
    for module, name in [(caption, "caption_records"), (ask, "ask_records"), (respond, "respond_records"),
                         (perturb, "perturb_records")]:  # fmt: skip
        monkeypatch.setattr(module, name, s.stage)
    return s


# command, the config file, typed options, what the stage settings must hold, the model opened (or None)
CASES = [
    ("caption",
     {"model": "cfg/lvlm", "samples_per_prompt": 3, "max-new-tokens": 7, "seed": 1, "batch_size": 2},
     ["--seed", "9"], {"samples_per_prompt": 3, "max_new_tokens": 7, "seed": 9, "batch_size": 2},
     "cfg/lvlm"),
    ("ask", {"model": "cfg/llm", "questions": 4, "input_order": "any", "top_p": 0.5},
     ["--questions", "3"], {"questions": 3, "input_order": "any", "top_p": 0.5}, "cfg/llm"),
    ("respond", {"yes-no": "generate", "temperature": 0.5, "workers": 0},  # -m is required: typed
     ["-m", "cfg/lvlm"], {"yes_no": "generate", "temperature": 0.5, "workers": 0}, "cfg/lvlm"),
    ("perturb", {"types": "attribute", "text_field": "caption", "seed": 4},
     ["--field", "text"], {"types": ("attribute",), "seed": 4, "text_field": "text"}, None),
]  # fmt: skip


@pytest.mark.parametrize("command, config, typed, expected, model", CASES, ids=[c[0] for c in CASES])
def test_config_file_sets_a_generating_commands_options(
    tmp_path, spy, command, config, typed, expected, model
):
    path = tmp_path / "opts.yaml"
    path.write_text(json.dumps(config))
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "image": "x.png", "text": "a cat", "prompt": "p"}\n')
    served = ["--engine", "openai", "--request-timeout", "5"] if model else []  # perturb: rules, no model
    result = invoke_cli(command, str(src), "--config", str(path), *typed, *served, "-q")
    assert result.exit_code == 0, result.stderr
    (settings,) = spy.settings
    assert {name: getattr(settings, name) for name in expected} == expected
    if model is None:
        assert spy.opened == []
    else:
        assert spy.opened == [{"model": model, "engine": "openai", "dtype": "auto", "timeout": 5.0}]


def test_config_file_is_checked_like_typed_options(tmp_path):
    path = tmp_path / "opts.yaml"
    path.write_text("top_p: 2\n")
    result = run_in_process("respond", "-", "-m", "x", "--config", str(path))
    assert result.returncode == 2 and "top_p" in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("command", [*GENERATING, "eval-amber"])
def test_a_server_url_with_the_in_process_engine_is_one_line(command, tmp_path):
    """--base-url without --engine openai was silently ignored (the model ran in-process); now refused in
    one line before any model loads, naming the fix."""
    args = ("--amber-root", str(tmp_path)) if command == "eval-amber" else ("-",)
    result = run_in_process(command, *args, "-m", "x", "--base-url", "http://127.0.0.1:9/v1")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "--base-url http://127.0.0.1:9/v1 is for --engine openai" in result.stderr
