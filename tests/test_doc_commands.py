"""Every `clipdpo ...` command line of the README, docs/*.md and the example scripts parses: the subcommand
exists, every option it names is one of that command's, each option that takes a value has one, and no more
positional arguments are given than the command takes. Checked with the command's own click parser (no
option callback, no command runs), so a documented command cannot silently stop working again."""

from __future__ import annotations

import enum
import functools
import re
import shlex
import typing
from pathlib import Path

import pytest

from tests.conftest import REPO

# docs/cli.md is generated from the commands: their own examples (the help's first paragraph) are checked
# instead (its wrapped lines are not shell lines).
SOURCES = sorted(
    [
        REPO / "README.md",
        *(p for p in (REPO / "docs").glob("*.md") if p.name != "cli.md"),
        *(REPO / "examples").rglob("*.sh"),
        *(REPO / "examples").rglob("*.sbatch"),
    ]
)

# Words that stand for "more of the same" or for a value the reader supplies: never counted as arguments.
PLACEHOLDERS = {"...", "…"}
# Placeholders for the subcommand itself (`clipdpo NAME ...` in docs/architecture.md, `clipdpo eval-X` for
# every benchmark command in docs/evaluation.md).
COMMAND_PLACEHOLDERS = {"NAME", "eval-X"}
# Shell words that may expand to any number of options (`$CAPTION_ARGS`, `"${ENCODING[@]}"`): the words
# around them are checked, the positional count is not.
EXPANDS_TO_OPTIONS = re.compile(r"^\$\{?(\w+_ARGS|\w+\[@\])\}?$")
# What may run clipdpo in a shell line (`srun --ntasks=1 clipdpo ...`, `time clipdpo ...`).
LAUNCHERS = {"srun", "time", "exec", "nohup", "env"}
# Lines that mention `clipdpo X` as prose or output rather than a command (`clipdpo filter: 1,000 in ...`).
NOT_A_COMMAND = re.compile(r"^clipdpo [\w-]+:")


def shell_words(text: str) -> list[list[str]]:
    """The simple commands of a shell line (split at |, ;, &&, ||, ( and )), as words. Optional parts
    written as `[-o FILE]` count as given."""
    text = re.sub(r"[<>]\([^()]*\)", "/dev/fd/63", text)  # <(zcat a.gz): one path argument, as bash passes it
    text = re.sub(r"(?<=\s)\d(?=[<>])", "", text)  # 2> log: the descriptor is no argument
    text = re.sub(r"(?<=\s)\[(-[^\]]*)\]", r"\1", text)
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    commands, current = [], []
    try:
        for word in lexer:
            if word and set(word) <= set(";&|()"):
                commands.append(current)
                current = []
            elif word and set(word) <= set("<>"):
                current.append("<redirect>")
            else:
                current.append(word)
    except ValueError:  # an unclosed quote: prose, not a command
        return []
    commands.append(current)
    out = []
    for words in commands:
        # the redirection target is no argument
        cleaned, skip = [], False
        for word in words:
            if skip:
                skip = False
            elif word == "<redirect>":
                skip = True
            else:
                cleaned.append(word)
        if "clipdpo" in cleaned:
            start = cleaned.index("clipdpo")
            # a command, not prose that names one: only a launcher, its options or VAR=value before it
            if all(w in LAUNCHERS or w.startswith("-") or re.match(r"^\w+=", w) for w in cleaned[:start]):
                out.append(cleaned[start:])
    return out


def snippets(path: Path) -> list[tuple[int, str]]:
    """(line number, shell text) of every place a doc or script writes a clipdpo command."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[tuple[int, str]] = []
    script = path.suffix in (".sh", ".sbatch")
    fenced = False
    pending, start = "", 0
    for number, line in enumerate(lines, 1):
        if not script and line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        code = script or fenced or line.startswith("    ")
        if code:
            if script and line.lstrip().startswith("#"):
                continue
            if pending:
                pending += " " + line.strip()
            else:
                pending, start = line.strip(), number
            if pending.endswith("\\"):
                pending = pending[:-1]
                continue
            if "clipdpo " in pending and not NOT_A_COMMAND.match(pending):
                out.append((start, pending))
            pending = ""
        else:
            for span in re.findall(r"`([^`]+)`", line):
                if span.startswith("clipdpo ") and not NOT_A_COMMAND.match(span):
                    out.append((number, span))
    return out


def help_examples() -> list[tuple[str, str]]:
    """Each command's own example: the first paragraph of its help (docs/cli.md shows it wrapped)."""
    from typer.main import get_command

    from clipdpo_cli.cli import build_app

    out = []
    for name, command in get_command(build_app()).commands.items():
        first = (command.help or "").strip().split("\n\n")[0]
        if first.startswith("clipdpo "):
            out.append((f"clipdpo {name} --help", " ".join(first.split())))
    return out


def commands() -> list[tuple[str, list[str]]]:
    found = [(where, words[1:]) for where, text in help_examples() for words in shell_words(text)]
    for path in SOURCES:
        for number, text in snippets(path):
            if text.startswith("Usage: "):  # docs/cli.md's usage lines
                continue
            for words in shell_words(text):
                found.append((f"{path.relative_to(REPO)}:{number}", words[1:]))
    return found


@functools.cache
def cli_group():
    from typer.main import get_command

    from clipdpo_cli.cli import build_app

    return get_command(build_app())


def is_literal(value: str) -> bool:
    """A value as typed, not a shell variable or a placeholder (FILE, MODEL, <n>)."""
    return not (value.startswith(("$", "<")) or re.fullmatch(r"[A-Z][A-Z0-9_]*", value))


def choices_of(param) -> list[str] | None:
    """The values an enum-typed option takes (typer declares them by the annotation), else None."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return [str(member.value) for member in candidate]
    return None


def parse_error(args: list[str]) -> str | None:
    """Why `clipdpo ARGS` would not parse, or None (a choice option's literal value is checked too)."""
    group = cli_group()
    if not args or args[0].startswith("-"):
        unknown = [a for a in args if a.startswith("-") and a not in ("--help", "--version")]
        return f"unknown option(s) of clipdpo: {unknown}" if unknown else None
    name, rest = args[0], args[1:]
    if name in COMMAND_PLACEHOLDERS:
        return None
    command = group.commands.get(name)
    if command is None:
        return f"no such command: clipdpo {name}"
    expands = any(EXPANDS_TO_OPTIONS.match(word) for word in rest)
    rest = [w for w in rest if not EXPANDS_TO_OPTIONS.match(w) and w not in PLACEHOLDERS]
    ctx = command.context_class(command, info_name=name)
    parser = command.make_parser(ctx)
    try:
        values, positional, _ = parser.parse_args(list(rest))
    except Exception as exc:  # click's (typer's copy) NoSuchOption / BadOptionUsage
        return f"clipdpo {name}: {exc}"
    for param in command.params:
        choices = choices_of(param)
        given = values.get(param.name)
        for value in given if isinstance(given, (list, tuple)) else [given]:
            if choices and isinstance(value, str) and is_literal(value) and value not in map(str, choices):
                return f"clipdpo {name}: {value!r} is not one of {param.opts[0]}'s choices {choices}"
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    if not expands and all(p.nargs >= 0 for p in arguments):
        room = sum(p.nargs for p in arguments)
        if len(positional) > room:
            return f"clipdpo {name}: {len(positional)} arguments ({positional}), it takes {room}"
    return None


def test_the_extraction_finds_the_commands():
    found = commands()
    where = {w.split(":")[0] for w, _ in found}
    assert {"README.md", "docs/amber.md", "docs/training.md", "examples/pipeline.sh"} <= where
    assert "clipdpo probe --help" in where  # the commands' own examples
    assert ("README.md:11", ["train", "pairs.jsonl", "--model", "llava-hf/llava-1.5-7b-hf", "--deepspeed",
                             "zero3", "--output-dir", "out/"]) in found  # fmt: skip
    assert len(found) > 150


@pytest.mark.parametrize(
    "args, error",
    [
        (["eval-amber", "AMBER_DIR", "--model", "OUT"], "1 arguments (['AMBER_DIR']), it takes 0"),
        (["train", "p.jsonl", "--modle", "m"], "No such option: --modle"),
        (["filter", "x.jsonl", "--min-caption-score"], "Option '--min-caption-score' requires an argument"),
        (["evaluate", "x"], "no such command: clipdpo evaluate"),
        (["caption", "imgs/", "$CAPTION_ARGS", "-o", "x"], None),
        (["score", "...", "--model", "dfn-h14"], None),
        (["eval-amber", "--task", "generativ"], "'generativ' is not one of --task's choices"),
        (["eval-amber", "--task", "$TASK", "--yes-no", "prob"], None),
    ],
)
def test_the_check_finds_what_would_not_parse(args, error):
    found = parse_error(args)
    assert (found is None) if error is None else (found is not None and error in found), found


def test_every_documented_command_line_parses():
    bad = [f"{where}: {error}" for where, args in commands() if (error := parse_error(args))]
    assert not bad, "\n".join(bad)
