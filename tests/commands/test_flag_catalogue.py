"""One flag, one meaning, one help text: a long flag reads the same in every command that has it.

The shared options are declared once in the catalogue (commands/options.py, clip_options.py,
input_options.py, generation.py) and a settings field names them with `setting(..., shared=True)`; this
test walks every command of the app and fails on a flag whose help differs between commands, unless the
flag is in ALLOWED, which says why it means different things on purpose. Hidden (renamed) flags are not
checked.
"""

from collections import defaultdict

import pytest
import typer.main

from clipdpo_cli.cli import build_app

# A flag that means a different thing per command, on purpose (keep this short: a new entry needs a reason
# a user would accept, not "the texts drifted").
ALLOWED: dict[str, str] = {
    "--model": "a different model per command: the CLIP scorer, the LVLM, the chat LLM, the reference",
    "--batch-size": "a different unit per command: rows generated, images, queries, pairs, training examples",
    "--precision": "CLIP scorers autocast their forward pass; train and ref-logps set training precision",
    "--output": "what a command writes: records (stdout by default), a result JSON, an HTML page",
    "--prompt": "pair's prompt of every pair, score's prompt before the text, the zero-shot caption prompt",
    "--prompts": "a different file per command: caption prompts, perturb's templates, CHAIR's prompts",
    "--overwrite": "score and categorize replace a record's fields; train replaces a run folder",
    "--rejects": "the stage commands write the dropped records; report reads such files",
    "--min-caption-score": "filter drops captions below it; report draws it",
    "--min-question-score": "filter drops questions below it; report draws it",
    "--min-answer-score": "pair keeps answers from it up; report draws it",
    "--score-field": "score writes it (its default depends on --scorer); the others read it (probe: several)",
    "--field": "score's field to score; perturb's field holding the trusted caption it perturbs",
    "--resume": "a stage appends to its -o FILE; a benchmark skips the ids already in --responses-out",
    "--seed": "sampling streams per id; perturb's rule choice as well; train's shuffling and init",
    "--shard": "a stage takes its share of the records; a benchmark answers its share of the images",
    "--split": "a Hugging Face dataset's split; POPE's question sets; the zero-shot datasets' split",
    "--config": "train's file also speaks TRL's config names and a `trl dpo` recipe's",
}

# Commands other helpers convert in the same round, not yet on the catalogue's text: {flag: commands}.
# The lead empties this at merge (an entry the merged code no longer needs fails below).
PENDING: dict[str, set[str]] = {}


def flag_texts() -> dict[str, dict[str, str]]:
    """{long flag: {command: its help}} over every visible option of every command."""
    app = typer.main.get_command(build_app())
    texts: dict[str, dict[str, str]] = defaultdict(dict)
    for name, command in app.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            if param.param_type_name != "option" or getattr(param, "hidden", False):
                continue
            for flag in (*param.opts, *param.secondary_opts):
                if flag.startswith("--") and flag != "--help":
                    texts[flag][name] = param.help or ""
    return texts


def _differing(by_command: dict[str, str]) -> str:
    by_text: dict[str, list[str]] = defaultdict(list)
    for command, text in sorted(by_command.items()):
        by_text[text].append(command)
    return "\n".join(f"    {', '.join(commands)}: {text!r}" for text, commands in by_text.items())


def test_a_long_flag_has_one_help_text_across_commands():
    texts = flag_texts()
    assert {"--image-root", "--workers", "--score-field", "--quiet"} <= set(texts)  # the walk sees them
    failures = []
    for flag, by_command in sorted(texts.items()):
        if flag in ALLOWED:
            continue
        checked = {c: t for c, t in by_command.items() if c not in PENDING.get(flag, set())}
        if len(set(checked.values())) > 1:
            failures.append(f"{flag} has {len(set(checked.values()))} help texts:\n{_differing(checked)}")
    assert not failures, (
        "one flag, one help text: give these flags the catalogue's option (commands/options.py, "
        "clip_options.py, input_options.py, generation.py), or list them in ALLOWED with a reason:\n"
        + "\n".join(failures)
    )


@pytest.mark.parametrize("flag", sorted(ALLOWED))
def test_an_allowed_flag_still_has_several_meanings(flag):
    texts = flag_texts()[flag]
    assert len(set(texts.values())) > 1, f"{flag} now has one help text: remove it from ALLOWED"


def test_pending_entries_are_still_needed():
    texts = flag_texts()
    for flag, commands in PENDING.items():
        others = {t for c, t in texts[flag].items() if c not in commands}
        for command in commands:
            assert command in texts[flag], f"{command} has no {flag}: remove it from PENDING"
            agrees = f"{command}'s {flag} agrees now: remove it from PENDING"
            assert texts[flag][command] not in others, agrees


def test_catalogue_texts_of_the_renamed_and_unified_flags():
    """The texts this round unified, where they were six (--image-root) or two (--workers) before."""
    texts = flag_texts()
    root = "Folder that relative `image` paths are relative to; default: $CLIPDPO_IMAGE_ROOT."
    for command in ("score", "categorize", "export", "report", "respond"):
        assert texts["--image-root"][command] == root
    workers = "Workers decoding images ahead of the model (0: in-process, one at a time)."
    assert {texts["--workers"][c] for c in ("score", "categorize", "respond")} == {workers}
    # --image-dir was both where byte images are written and eval-amber's AMBER image folder
    assert "--image-dir" not in texts or set(texts["--image-dir"]) <= {"eval-amber"}
    assert set(texts["--extract-images-to"]) >= {"score", "filter", "pair", "respond", "caption"}
    # probe's score fields are --score-field; --scorer-field is only score's field of the scorer's name
    assert set(texts["--scorer-field"]) == {"score"}
