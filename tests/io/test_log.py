"""io/log.py: the one stderr voice (prefix, quiet, only the main process of a distributed launch)."""

from __future__ import annotations

import pytest

from clipdpo_cli.io import log


@pytest.fixture
def single(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


def test_prefixes(single: None, capsys: pytest.CaptureFixture[str]) -> None:
    log.info("filter", "processing only shard 1/4")
    log.note("eval-amber", "a.jsonl: 2 string(s)")
    log.warning("train", "--max-length 5 leaves 2 of 2 rows")
    log.note("", "--max-pixels has no effect")
    log.error("pair", "no such file")
    log.error("", "interrupted", label="")
    log.say("a table\nof two lines")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "clipdpo filter: processing only shard 1/4",
        "clipdpo eval-amber: note: a.jsonl: 2 string(s)",
        "clipdpo train: warning: --max-length 5 leaves 2 of 2 rows",
        "clipdpo: note: --max-pixels has no effect",
        "clipdpo pair: error: no such file",
        "clipdpo: interrupted",
        "a table",
        "of two lines",
    ]


def test_quiet_silences_all_but_errors(single: None, capsys: pytest.CaptureFixture[str]) -> None:
    log.say("summary", quiet=True)
    log.info("score", "x", quiet=True)
    log.note("score", "x", quiet=True)
    log.warning("score", "x", quiet=True)
    log.error("score", "bad")
    assert capsys.readouterr().err == "clipdpo score: error: bad\n"


@pytest.mark.parametrize(
    ("rank", "local_rank", "main"),
    [(None, None, True), ("0", None, True), ("0", "0", True), ("1", None, False), (None, "2", False),
     ("3", "0", False), ("0", "1", True), ("", "1", False), ("x", None, True)],
)
def test_only_rank_zero_speaks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], rank: str | None,
    local_rank: str | None, main: bool,
) -> None:
    for name, value in (("RANK", rank), ("LOCAL_RANK", local_rank)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert log.is_main_process() is main
    log.warning("train", "once")
    log.error("train", "each process")
    expected = ["clipdpo train: warning: once"] if main else []
    assert capsys.readouterr().err.splitlines() == [*expected, "clipdpo train: error: each process"]
