"""io/extras.py: a command whose optional dependency is missing says which extra installs it, in one line;
the core commands run without any extra (each absent module simulated by `sys.modules[name] = None` in a
fresh interpreter, which makes `import name` fail as on a machine without it)."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from clipdpo_cli.io.extras import EXTRAS, MissingExtra, extra_for, missing_extra, require
from tests.conftest import cli_env

EVERY_EXTRA_MODULE = sorted(EXTRAS)
RUN_WITHOUT = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from clipdpo_cli.cli import main
main(sys.argv[2:])
"""


def run_without(absent: list[str], *args: str) -> subprocess.CompletedProcess:
    """`clipdpo ARGS` in a fresh interpreter where the modules `absent` cannot be imported."""
    return subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT, ",".join(absent), *args],
        capture_output=True, env=cli_env(HF_HUB_OFFLINE="1"), timeout=300,
    )  # fmt: skip


def test_the_extra_of_each_optional_module():
    assert extra_for("trl") == extra_for("deepspeed") == extra_for("peft.tuners") == "train"
    assert extra_for("webdataset") == "inputs" and extra_for("scipy.io") == "zeroshot"
    assert extra_for("datasets") == "inputs" and extra_for("datasets", "train") == "train"
    assert extra_for("matplotlib") == "report" and extra_for("openai") == "serving"
    assert extra_for("torch") is None and extra_for("no_such_module") is None


def test_the_message_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "webdataset", None)
    error = missing_extra("webdataset", "caption")
    assert str(error) == (
        "needs the inputs extra (webdataset is not installed): pip install 'clipdpo-cli[inputs]'"
    )
    with pytest.raises(MissingExtra) as info:
        require("webdataset", "a tar shard input")
    assert str(info.value).startswith("a tar shard input needs the inputs extra (webdataset is not")
    assert info.value.exit_code == 1


def test_an_installed_library_or_an_unknown_module_is_not_a_missing_extra():
    assert missing_extra("trl.no_such_submodule") is None  # trl is installed: a bug, not a missing extra
    assert missing_extra("no_such_module") is None
    with pytest.raises(ModuleNotFoundError):
        require("no_such_module_anywhere")
    assert require("orjson") is orjson


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    path = tmp_path_factory.mktemp("extras") / "scored.jsonl"
    rows = [{"id": f"c{k}", "image": "a.png", "kind": "caption", "prompt": "Describe.", "text": text,
             "clip_score": score} for k, (text, score) in enumerate([("a red ball on the grass", 31.0),
                                                                    ("a blue box", 22.5)])]  # fmt: skip
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def test_filter_and_pair_run_without_any_extra(scored):
    """What `pip install clipdpo-cli` is for: filtering and pairing need no extra."""
    kept = run_without(EVERY_EXTRA_MODULE, "filter", str(scored), "--min-caption-score", "25", "-q")
    assert kept.returncode == 0, kept.stderr.decode()
    assert [orjson.loads(line)["id"] for line in kept.stdout.splitlines()] == ["c0"]
    options = ["--min-margin", "1", "--max-length-diff", "1", "-q"]
    pairs = run_without(EVERY_EXTRA_MODULE, "pair", str(scored), *options)
    assert pairs.returncode == 0, pairs.stderr.decode()
    (pair,) = [orjson.loads(line) for line in pairs.stdout.splitlines()]
    assert (pair["chosen"], pair["rejected"]) == ("a red ball on the grass", "a blue box")
    assert pair["margin"] == 8.5


@pytest.mark.parametrize(
    ("command", "absent", "extra", "module"),
    [
        (["train", "{pairs}", "--model", "/no/such/model", "--output-dir", "{out}"], ["trl"], "train", "trl"),
        (["ref-logps", "{pairs}", "--model", "/no/such/model"], EVERY_EXTRA_MODULE, "train", "trl"),
    ],
)
def test_a_command_without_its_extra_is_one_line(tmp_path, scored, command, absent, extra, module):
    pairs = tmp_path / "pairs.jsonl"
    pair = {"id": "p", "image": "a.png", "prompt": "Describe.", "chosen": "a ball.", "rejected": "a box."}
    pairs.write_bytes(orjson.dumps(pair) + b"\n")
    args = [a.format(pairs=pairs, out=tmp_path / "out") for a in command]
    result = run_without(absent, *args)
    err = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines() == [
        f"clipdpo {command[0]}: error: needs the {extra} extra ({module} is not installed): "
        f"pip install 'clipdpo-cli[{extra}]'"
    ]
    assert not (tmp_path / "out").exists()
