"""io/jsonfile.py: the one writer of whole JSON documents (layouts, whole-or-nothing files, stdout)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from clipdpo_cli.io import jsonfile
from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.jsonfile import json_bytes, write_json

VALUE = {"name": "café", "n": [1, 2.5, None], "nested": {"empty": [], "flag": True}}


@pytest.mark.parametrize("indent", [0, 1, None])
def test_other_layouts_are_the_standard_librarys(indent: int | None) -> None:
    assert json_bytes(VALUE, indent) == (json.dumps(VALUE, indent=indent) + "\n").encode()


def test_two_space_layout_is_utf8_and_takes_numpy() -> None:
    assert json_bytes(VALUE) == (json.dumps(VALUE, indent=2, ensure_ascii=False) + "\n").encode()
    assert json.loads(json_bytes({"a": np.float32(0.5), "b": np.arange(2)})) == {"a": 0.5, "b": [0, 1]}


def test_file_stdout_and_dev_null(tmp_path, capsysbinary) -> None:
    path = tmp_path / "m.json"
    write_json(VALUE, str(path))
    assert json.loads(path.read_bytes()) == VALUE
    write_json({"x": 1}, "-")
    write_json({"x": 2})
    assert capsysbinary.readouterr().out == b'{\n  "x": 1\n}\n{\n  "x": 2\n}\n'
    write_json(VALUE, os.devnull)  # written in place, never replaced by a regular file
    assert not os.path.isfile(os.devnull)
    assert os.listdir(tmp_path) == ["m.json"]


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"old": true}\n')

    def full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jsonfile.os, "replace", full)
    with pytest.raises(InputError, match="cannot write .*m.json: No space left on device"):
        write_json(VALUE, str(path))
    assert path.read_text() == '{"old": true}\n'
    assert os.listdir(tmp_path) == ["m.json"]  # no temporary file left


def test_a_symlinks_target_is_replaced(tmp_path) -> None:
    target = tmp_path / "real.json"
    target.write_text("{}\n")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_json({"a": 1}, str(link))
    assert link.is_symlink() and json.loads(target.read_text()) == {"a": 1}
