"""The sampling defaults that docs/ and examples/ state are the ones the commands' --help gives.

The paper publishes no temperature, top-p or length: the defaults are ours, with their reasons in
docs/generation.md; examples/ leave sampling at those defaults and docs/records.md shows them.
"""

from __future__ import annotations

import enum
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
    # auto: sized to the device once the model is loaded (16 on CPU)
    assert re.search(r"\| `--batch-size` \| (\w+) ", text).group(1) == "auto" and code["batch_size"] is None


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


# --- every option table of docs/*.md states the defaults of the command it documents ---

NOT_A_VALUE = {"", "none", "all", "packaged"}  # "none": no default value; checked against None below


def option_tables(text: str) -> list[list[tuple[list[str], str]]]:
    """The option tables of a doc: per table, rows of ([--option, ...], the default column's text)."""
    tables, current = [], []
    for line in [*text.splitlines(), ""]:
        row = line.strip().strip("|")
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)] if line.startswith("| `--") else None
        if cells is not None and len(cells) >= 2:
            current.append((re.findall(r"`(--[a-z-]+)", cells[0]), cells[1]))
        elif current:
            tables.append(current)
            current = []
    return tables


def param_defaults(command: str) -> dict[str, object]:
    """{--option: its default} of a command (flags as bool, choices as their value)."""
    cmd = typer.main.get_command(build_app()).commands[command]
    found = {}
    for p in cmd.params:
        for opt in [*p.opts, *getattr(p, "secondary_opts", [])]:
            found[opt] = getattr(p.default, "value", p.default)
    return found


def documented(value: str) -> list[object] | None:
    """The default(s) a table cell states ('0.7 / 0.95', '`fp32`', 'off', 'none', 64), else None."""
    words = [w.strip().strip("`") for w in value.split("/")]
    if value.startswith(("`none`", "none")):
        return [None]
    out = []
    for word in words:
        word = re.sub(r"\s*\(.*\)$", "", word)  # "`cosine` (to 0)"
        if word in ("off", "on"):
            out.append(word == "on")
        elif re.fullmatch(r"-?[\d.]+(e-?\d+)?", word):
            out.append(float(word))
        elif re.fullmatch(r"[a-z0-9][a-z0-9_-]*", word) and word not in NOT_A_VALUE:
            out.append(word)
        else:
            return None
    return out


DOC_TABLES = ["clip.md", "generation.md", "probe.md", "training.md", "zeroshot.md"]


@pytest.mark.parametrize("name", DOC_TABLES)
def test_every_option_table_states_the_code_defaults(name):
    from clipdpo_cli.cli import COMMAND_MODULES

    commands = [m.replace("_", "-") for m in COMMAND_MODULES]
    checked = 0
    for table in option_tables(doc(name)):
        options = {o for opts, _ in table for o in opts}
        owners = [c for c in commands if options <= set(param_defaults(c))]
        if not owners:
            continue  # a table of something else (families.md's feature matrix, records.md's formats)
        code = param_defaults(owners[0])
        for opts, value in table:
            stated = documented(value)
            if stated is None or len(stated) != len(opts):
                continue  # prose ("the processor's", "0.1 for cdpo, else 0")
            for opt, want in zip(opts, stated, strict=True):
                have = code[opt]
                if have is None and want is not None:
                    continue  # worked out at run time ("clip_score, or lvlm_logp"): the row's prose says how
                if want in (None, False) and have == "none":
                    have = want  # an option that takes the word none ("--baseline clip | off")
                if opt == "--max-steps" and want is False:
                    want = -1  # "off"
                if isinstance(want, float) and not isinstance(have, bool):
                    have = float(have) if have is not None else None
                where = f"docs/{name}: {owners[0]} {opt}"
                assert have == want, f"{where} is documented as {value}, the code has {have}"
                checked += 1
    assert checked >= 4, f"docs/{name}: only {checked} defaults checked (did the table format change?)"


# --- the shipped scripts keep the defaults, or say in a comment why they depart from one ---

SLURM = REPO / "examples" / "slurm"
SCRIPTS = ["examples/pipeline.sh", *sorted(f"examples/slurm/{p.name}" for p in SLURM.iterdir())]
ARGS_COMMANDS = {  # which commands a script's *_ARGS variable is passed to
    "CAPTION_ARGS": ["caption"], "ASK_ARGS": ["ask"], "SCORE_ARGS": ["score"], "FILTER_ARGS": ["filter"],
    "PAIR_ARGS": ["pair"], "TRAIN_ARGS": ["train"], "ENCODE_ARGS": ["train"],
    "EVAL_ARGS": ["eval-amber", "eval-zeroshot"],
}  # fmt: skip


def script_settings(path: str) -> list[tuple[str, str, str]]:
    """(command, --option, value) of every valued option the script passes: on its `clipdpo CMD` lines
    and in the defaults of its *_ARGS variables."""
    text = (REPO / path).read_text().replace("\\\n", " ")
    found = []
    runs = [(m.group(1), m.group(2)) for m in re.finditer(r"clipdpo ([a-z-]+)([^|;&\n]*)", text)]
    for var, words in script_defaults(path).items():
        runs += [(command, " ".join(words)) for command in ARGS_COMMANDS[var]]
    for command, rest in runs:
        words = shlex.split(re.sub(r"#.*", "", rest))
        found += [(command, w, v) for w, v in zip(words, words[1:], strict=False) if w.startswith("--")]
    return found


def is_setting(default: object) -> bool:
    """A tunable value (a number or a choice), not a name, a path, a field or a flag."""
    return isinstance(default, (int, float, enum.Enum)) and not isinstance(default, bool)


@pytest.mark.parametrize("path", SCRIPTS)
def test_scripts_depart_from_a_default_only_with_a_comment_saying_why(path):
    comments = "\n".join(re.findall(r"#.*", (REPO / path).read_text()))
    app = typer.main.get_command(build_app()).commands
    departures = []
    for command, option, value in script_settings(path):
        param = next((p for p in app[command].params if option in p.opts), None)
        if param is None or getattr(param, "is_flag", False) or not is_setting(param.default):
            continue
        default = getattr(param.default, "value", param.default)
        same = str(value) == str(default) or (
            re.fullmatch(r"[\d.e-]+", value) is not None and float(value) == float(default)
        )
        if not same and option not in comments:
            departures.append(f"{command} {option} {value} (default {default})")
    assert not departures, f"{path}: departures without a comment naming the option: {departures}"


def test_the_departure_check_sees_the_options_of_each_kind_of_line():
    settings = script_settings("examples/pipeline.sh")
    assert ("ask", "--batch-size", "32") in settings  # from ASK_ARGS's default
    assert ("pair", "--input-order", "any") in settings  # from a `clipdpo pair` line
    assert ("train", "--per-device-batch-size", "4") in script_settings("examples/slurm/train.sbatch")
