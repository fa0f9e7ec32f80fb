"""Helpers for benchmark scripts: run a command, time it, and read its peak RSS (Linux wait4)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass


@dataclass
class Measurement:
    name: str
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float = 0.0


def measure(
    name: str,
    cmd: list[str] | str,
    stdin_path: str | None = None,
    stdout_path: str = os.devnull,
    env: dict[str, str] | None = None,
) -> Measurement:
    """Run `cmd` once with stdin/stdout redirected; wall seconds and the child's peak RSS."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    with open(stdout_path, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=out, shell=isinstance(cmd, str), env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    if stdin_path:
        stdin.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name}: command failed: {cmd}")
    return Measurement(name, seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def best_of(n: int, name: str, *args, **kwargs) -> Measurement:
    """The fastest of n runs (peak RSS of that run)."""
    return min((measure(name, *args, **kwargs) for _ in range(n)), key=lambda m: m.seconds)


def best_of_interleaved(n: int, commands: list[tuple[str, tuple, dict]]) -> list[Measurement]:
    """The fastest of n runs of each (name, args, kwargs) command, run in alternating rounds.

    Rounds spread a slow spell of a shared machine over all the commands instead of one.
    """
    runs: dict[str, list[Measurement]] = {name: [] for name, _, _ in commands}
    for _ in range(n):
        for name, args, kwargs in commands:
            runs[name].append(measure(name, *args, **kwargs))
    return [min(runs[name], key=lambda m: m.seconds) for name, _, _ in commands]


def table(rows: list[Measurement], baseline: Measurement) -> str:
    """Wall and CPU seconds (user + sys of the process) with ratios to the baseline, and peak RSS.

    On a shared machine the CPU-time ratio is the steadier figure; both are printed.
    """
    lines = [f"{'command':<34} {'wall s':>7} {'x base':>7} {'cpu s':>7} {'x base':>7} {'peak RSS MB':>12}"]
    for m in rows:
        wall_ratio = m.seconds / baseline.seconds
        cpu_ratio = m.cpu_seconds / baseline.cpu_seconds if baseline.cpu_seconds else float("nan")
        lines.append(
            f"{m.name:<34} {m.seconds:>7.2f} {wall_ratio:>7.2f} {m.cpu_seconds:>7.2f} {cpu_ratio:>7.2f}"
            f" {m.peak_rss_mb:>12.0f}"
        )
    return "\n".join(lines)
