"""Files a user names may be pipes (`--chat-template <(...)`, `--objects <(...)`): read like files."""

from __future__ import annotations

import os
import threading

import pytest

from clipdpo_cli.io.errors import InputError


def fifo_with(tmp_path, text: str) -> str:
    path = str(tmp_path / "pipe")
    os.mkfifo(path)

    def feed() -> None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)

    threading.Thread(target=feed, daemon=True).start()
    return path


def test_chat_template_from_a_pipe_text_or_file(tmp_path):
    from clipdpo_cli.models.hub import read_chat_template

    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert read_chat_template(fifo_with(tmp_path, template)) == template  # before: "file not found"
    assert read_chat_template(template) == template
    with pytest.raises(InputError, match="^chat template file not found: nope.jinja$"):
        read_chat_template("nope.jinja")


def test_perturb_objects_from_a_pipe(tmp_path):
    from clipdpo_cli.stages.perturb import read_objects

    assert read_objects(fifo_with(tmp_path, "kite\n# a comment\nZebra\nkite\n")) == ["kite", "zebra"]
    with pytest.raises(InputError, match="^objects file not found: "):
        read_objects(str(tmp_path / "missing.txt"))
