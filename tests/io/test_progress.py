"""Progress of long work: the rate / time-left arithmetic on a fake clock, when plain lines are due, and the
displays of a record stage (plain lines off a terminal, a bar on one, nothing with --quiet)."""

from __future__ import annotations

import io
import json
import os
import time

import pytest
from PIL import Image

from clipdpo_cli.io.progress import LineTicker, Progress, ProgressState, clock_time, rate_text
from clipdpo_cli.io.runner import IOSettings, run_stage


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def state(**kw) -> tuple[ProgressState, FakeClock]:
    clock = FakeClock()
    return ProgressState(clock=clock, **kw), clock


def test_clock_time_and_rate_text():
    assert clock_time(0) == "0:00:00"
    assert clock_time(59.6) == "0:01:00"
    assert clock_time(3 * 3600 + 25 * 60 + 7) == "3:25:07"
    assert clock_time(26 * 3600) == "26:00:00"
    assert clock_time(-5) == "0:00:00"
    assert [rate_text(r) for r in (12345.6, 123.4, 12.34, 0.1234, 0.004)] == [
        "12,346", "123", "12.3", "0.123", "0.004",
    ]  # fmt: skip


def test_a_known_total_gives_rate_and_time_left():
    s, clock = state(total=200)
    clock.now, s.done = 10.0, 50
    # 50 records in 10 s: 5/s; 150 left at 5/s: 30 s
    assert s.measure(10.0) == (5.0, 30.0)
    assert s.line("caption", 10.0) == (
        "clipdpo caption: 50/200 records (25.0%), 5.0 records/s, 0:00:30 left, 0:00:10 elapsed"
    )


def test_a_file_input_is_measured_by_the_bytes_read():
    s, clock = state(total_bytes=1000)
    clock.now, s.done, s.bytes_read = 20.0, 40, 250
    # 40 records / 20 s = 2/s; a quarter of the bytes in 20 s: the other three quarters take 60 s
    assert s.measure(20.0) == (2.0, 60.0)
    assert s.line("score", 20.0) == (
        "clipdpo score: 40 records (25.0% of the input), 2.0 records/s, 0:01:00 left, 0:00:20 elapsed"
    )


def test_without_a_size_only_count_and_rate():
    s, clock = state()
    clock.now, s.done = 20.0, 40
    assert s.measure(20.0) == (2.0, None)
    assert s.line("score", 20.0) == "clipdpo score: 40 records, 2.0 records/s, 0:00:20 elapsed"


def test_the_rate_forgets_a_slow_start_after_the_window():
    s, _ = state(total=10_000, window=300)
    s.measure(100.0)  # 100 s of model loading, nothing done
    s.done = 1000
    s.measure(200.0)
    s.done = 3000  # from t=100 on: 10 records/s
    rate, left = s.measure(400.0)
    # the window (t >= 100) starts at the sample taken at t=100: 3000 / 300 s, not 3000 / 400 s overall
    assert rate == pytest.approx(10.0)
    assert left == pytest.approx(7000 / 10.0)  # the fraction still to do at that pace


def test_a_resumed_count_is_not_the_pace():
    s, clock = state(unit="steps", total=100)
    s.done = 40  # steps done before a resume
    clock.now = 1000.0
    s.restart()
    clock.now, s.done = 1010.0, 45
    assert s.measure(1010.0) == pytest.approx((0.5, 110.0))  # 5 steps in 10 s; 55 left
    s.note = "loss 0.6931"
    assert s.line("train", 1010.0) == (
        "clipdpo train: 45/100 steps (45.0%), 0.5 steps/s, 0:01:50 left, 0:00:10 elapsed, loss 0.6931"
    )


def test_finished_work_has_nothing_left_and_no_progress_no_estimate():
    s, _ = state(total=4)
    s.done = 4
    assert s.measure(8.0) == (0.5, 0.0)
    s2, _ = state(total=4)
    assert s2.measure(0.0) == (None, None)  # no time has passed: no rate yet
    assert s2.measure(5.0) == (0.0, None)  # nothing done yet: no time left to estimate


def test_lines_are_due_on_a_fixed_grid():
    ticker = LineTicker(60.0, started=0.0)
    assert [ticker.due(t) for t in (1.0, 59.9, 60.0, 61.0, 119.9)] == [False, False, True, False, False]
    assert ticker.due(185.0)  # 120 and 180 slept through: one line, then the grid goes on at 240
    assert ticker.next_due == 240.0
    assert not ticker.due(239.0) and ticker.due(240.0)


def test_plain_lines_off_a_terminal_at_the_interval():
    out = io.StringIO()
    with Progress("caption", total=100, every=0.05, stream=out, terminal=False) as bar:
        for _ in range(10):
            bar.update(advance=1)
            time.sleep(0.03)
    lines = out.getvalue().splitlines()
    assert 2 <= len(lines) <= 8, lines  # about 0.3 s at one line per 0.05 s
    assert all(line.startswith("clipdpo caption: ") and "/100 records (" in line for line in lines)
    assert "records/s" in lines[-1] and "left" in lines[-1]


@pytest.mark.parametrize("kw", [{"quiet": True}, {"every": 0}])
def test_quiet_or_every_zero_print_nothing_off_a_terminal(kw):
    out = io.StringIO()
    with Progress("caption", total=100, stream=out, terminal=False, **{"every": 0.02, **kw}) as bar:
        bar.update(advance=5)
        time.sleep(0.1)
    assert out.getvalue() == ""


def test_quiet_draws_no_bar_on_a_terminal():
    out = io.StringIO()
    with Progress("caption", total=100, stream=out, terminal=True, quiet=True) as bar:
        bar.update(advance=5)
        time.sleep(0.15)
    assert out.getvalue() == ""


def test_a_bar_on_a_terminal_shows_count_rate_and_time_left():
    out = io.StringIO()
    with Progress("caption", total=100, stream=out, terminal=True) as bar:
        for _ in range(10):
            bar.update(advance=3, note="loss 0.69")
            time.sleep(0.03)
    drawn = out.getvalue()
    assert "30/100 records" in drawn and "records/s" in drawn and "left" in drawn and "loss 0.69" in drawn


def slow_copy(records, ctx):
    for record in records:
        time.sleep(0.02)
        yield record


def test_a_record_stage_prints_lines_with_the_input_fraction(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "text": "x" * 40}) + "\n" for i in range(20)))
    io_opts = IOSettings(input=str(src), output=str(tmp_path / "out.jsonl"), progress_every=0.1)
    run_stage("slow", io_opts, slow_copy)
    err = capsys.readouterr().err.splitlines()
    progress = [line for line in err if "% of the input" in line]
    assert progress and all(line.startswith("clipdpo slow: ") for line in progress)
    assert err[-1].startswith("clipdpo slow: 20 in, 20 out")  # the summary comes last


def test_a_gz_input_is_measured_by_its_compressed_bytes(tmp_path):
    import gzip

    from clipdpo_cli.io.jsonl import LineSource

    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        lines = (json.dumps({"id": i, "t": os.urandom(32).hex()}) + "\n" for i in range(20000))
        fh.write("".join(lines).encode())  # random text: the compressed file is read gradually
    source = LineSource(str(path))
    assert source.total_bytes == path.stat().st_size
    stream = source.open()
    stream.read(1000)
    assert 0 < source.bytes_read < source.total_bytes
    stream.read()
    assert source.bytes_read == source.total_bytes
    source.close()


def test_a_folder_is_counted_first(tmp_path, capsys):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.png", "b.jpg", "sub/c.png"):
        Image.new("RGB", (4, 4)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    io_opts = IOSettings(input=str(folder), output=str(tmp_path / "out.jsonl"), progress_every=0.02)
    run_stage("slow", io_opts, slow_copy, allow_folder=True)
    err = capsys.readouterr().err
    assert "/3 records (" in err and "3 in, 3 out" in err


def test_quiet_record_stage_prints_nothing(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(10)))
    io_opts = IOSettings(input=str(src), output=str(tmp_path / "out.jsonl"), quiet=True, progress_every=0.02)
    run_stage("slow", io_opts, slow_copy)
    assert capsys.readouterr().err == ""


def test_silenced_libraries_turns_off_warnings_logging_and_bars_then_restores_them(capsys, monkeypatch):
    import logging
    import warnings

    from huggingface_hub.utils import are_progress_bars_disabled

    from clipdpo_cli.io.quiet import silenced_libraries

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    logger = logging.getLogger("some.library")
    with silenced_libraries():
        warnings.warn("deprecated", FutureWarning, stacklevel=1)
        logger.warning("chatter")
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1" and are_progress_bars_disabled()
    assert capsys.readouterr().err == ""
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ and not are_progress_bars_disabled()
    assert logging.root.manager.disable == logging.NOTSET
    with pytest.warns(FutureWarning):  # the filters are back
        warnings.warn("deprecated", FutureWarning, stacklevel=1)
    with silenced_libraries(quiet=False), pytest.warns(UserWarning):
        warnings.warn("shown", stacklevel=1)


def test_every_stage_command_takes_progress_every(tmp_path, monkeypatch):
    """The shared option reaches IOSettings; a negative interval is a usage error."""
    import clipdpo_cli.commands.filter as filter_command
    from tests.conftest import invoke_cli

    seen = []
    monkeypatch.setattr(filter_command, "run_selection", lambda name, io, select: seen.append(io))
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1}\n')
    assert invoke_cli("filter", str(src), "--progress-every", "300").exit_code == 0
    assert seen[-1].progress_every == 300.0 and not seen[-1].quiet
    assert invoke_cli("filter", str(src)).exit_code == 0 and seen[-1].progress_every == 60.0
    assert invoke_cli("filter", str(src), "--progress-every", "-1").exit_code == 2
