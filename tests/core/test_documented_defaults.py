"""The sampling defaults that docs/ and examples/ state are the ones the commands' --help gives.

The paper publishes no temperature, top-p or length: the defaults are ours, with their reasons in
docs/generation.md; examples/ leave sampling at those defaults and docs/records.md shows them.
"""

from __future__ import annotations

import re
import shlex

import pytest
import typer

from clipdpo_cli.cli import build_app
from tests.conftest import REPO

SAMPLING = ("temperature", "top_p", "max_new_tokens")


def defaults(command: str) -> dict[str, object]:
    cmd = typer.main.get_command(build_app()).commands[command]
    return {p.name: p.default for p in cmd.params}


def doc(name: str) -> str:
    return (REPO / "docs" / name).read_text()


def test_caption_option_table_of_generation_md():
    text, code = doc("generation.md"), defaults("caption")
    temperature, top_p = re.search(r"\| `--temperature` / `--top-p` \| ([\d.]+) / ([\d.]+) \|", text).groups()
    assert (float(temperature), float(top_p)) == (code["temperature"], code["top_p"]) == (0.7, 0.95)
    assert (
        int(re.search(r"\| `--max-new-tokens` \| (\d+) \|", text).group(1)) == code["max_new_tokens"] == 128
    )
    assert (
        int(re.search(r"\| `--samples-per-prompt` \| (\d+) \|", text).group(1)) == code["samples_per_prompt"]
    )
    assert int(re.search(r"\| `--batch-size` \| (\d+) \|", text).group(1)) == code["batch_size"]


@pytest.mark.parametrize("name", ["generation.md", "records.md"])
def test_example_caption_records_show_the_defaults(name):
    code = defaults("caption")
    pattern = r'"kind": "caption".*?"temperature": ([\d.]+), "top_p": ([\d.]+), "max_new_tokens": (\d+)'
    record = re.search(pattern, doc(name), re.S)
    assert record is not None
    assert [float(v) for v in record.groups()] == [code[k] for k in SAMPLING]


def test_ask_perturb_amber_and_zeroshot_defaults_in_their_docs():
    ask = re.search(
        r"`--temperature ([\d.]+)`, `--top-p ([\d.]+)`,\s+`--max-new-tokens (\d+)`", doc("generation.md")
    )
    assert [float(v) for v in ask.groups()] == [defaults("ask")[k] for k in SAMPLING] == [0.7, 0.95, 256]
    assert (
        int(re.search(r"`--batch-size` \(default (\d+) prompts", doc("generation.md")).group(1))
        == (defaults("ask")["batch_size"])
    )
    probe = re.search(r"`--temperature` \(([\d.]+)\), `--top-p` \(([\d.]+)\), `--max-new-tokens` \((\d+)\)",
                      doc("probe.md"))  # fmt: skip
    assert [float(v) for v in probe.groups()] == [defaults("perturb")[k] for k in SAMPLING]
    amber = defaults("eval-amber")
    assert "greedy decoding by default (`--temperature 0`)" in doc("amber.md") and amber["temperature"] == 0.0
    assert f"`--max-new-tokens {amber['max_new_tokens']}`" in doc("amber.md")
    zeroshot = re.search(r"\| `--max-new-tokens` \| (\d+) \|", doc("zeroshot.md"))
    assert int(zeroshot.group(1)) == defaults("eval-zeroshot")["max_new_tokens"]


def script_defaults(path: str) -> dict[str, list[str]]:
    """{VAR: the words of its default} for each `VAR=${VAR:-default}` line of a shell script."""
    found = {}
    for var, default in re.findall(
        r"^(\w+_ARGS)=\$\{\1:-(.*)\}\s*(?:#.*)?$", (REPO / path).read_text(), re.M
    ):
        found[var] = shlex.split(default)
    return found


@pytest.mark.parametrize("path", ["examples/pipeline.sh", "examples/slurm/caption.sbatch"])
def test_examples_leave_sampling_at_the_documented_defaults(path):
    commands = {"CAPTION_ARGS": "caption", "ASK_ARGS": "ask", "EVAL_ARGS": "eval-amber"}
    found = script_defaults(path)
    assert "CAPTION_ARGS" in found
    for var, words in found.items():
        if var not in commands:
            continue
        code = defaults(commands[var])
        for option in ("--temperature", "--top-p", "--max-new-tokens"):
            if option in words:
                value = float(words[words.index(option) + 1])
                assert value == code[option[2:].replace("-", "_")], f"{path}: {var} sets {option} {value}"
