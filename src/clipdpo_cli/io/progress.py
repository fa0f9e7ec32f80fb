"""Progress of long work on stderr, one mechanism for every stage (record stages, train, the evaluations).

- On a terminal: a rich bar with the count, rate (units/s), time left and time elapsed.
- Off a terminal (a SLURM log, a file): one plain line every `every` seconds (`--progress-every`), e.g.
  `clipdpo caption: 1,200/5,000 records (24.0%), 3.2 records/s, 0:19:47 left, 0:06:15 elapsed`.
- With --quiet (or `every` 0 off a terminal): nothing.

The rate is measured over the last `WINDOW` seconds of work (a slow start, e.g. a model loading inside the
first batch, stops counting after that), and the time left is the fraction still to do at that pace. The
fraction comes from a known total (an image folder is counted first, train knows its steps) or, for a file,
from the bytes read so far (no counting pass over the input; a .gz file by its compressed bytes; stdin
shows the count and rate only).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

DEFAULT_EVERY = 60.0  # seconds between plain progress lines (--progress-every)
WINDOW = 300.0  # seconds of recent work the rate is measured over
_SPACING = 1.0  # at most one rate sample per second


def clock_time(seconds: float) -> str:
    """H:MM:SS (hours keep counting past a day: 26:00:00)."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def rate_text(rate: float) -> str:
    """A rate with about three significant figures: 1,234 / 12.3 / 0.123."""
    if rate >= 100:
        return f"{rate:,.0f}"
    if rate >= 1:
        return f"{rate:.1f}"
    return f"{rate:.3g}"


class ProgressState:
    """Counts of one piece of work and what they mean (fraction, rate, time left) on a given clock.

    `done` (units finished), `bytes_read` and `note` (e.g. the latest loss) are plain attributes that the
    work updates; the figures are computed when a display asks, from samples of (time, done, fraction).
    """

    def __init__(
        self,
        unit: str = "records",
        total: int | None = None,
        total_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        window: float = WINDOW,
    ) -> None:
        self.unit = unit
        self.total = total
        self.total_bytes = total_bytes
        self.done = 0
        self.bytes_read = 0
        self.note = ""
        self.clock = clock
        self.window = window
        self.restart()

    def restart(self) -> None:
        """Start the clock now, from the current count (a resumed run's earlier steps are not its pace)."""
        self.started = self.clock()
        self._samples: deque[tuple[float, int, float | None]] = deque(
            [(self.started, self.done, self.fraction())]
        )

    def fraction(self) -> float | None:
        """How much of the work is done, 0..1; None when neither a total nor the input size is known."""
        if self.total:
            return min(1.0, self.done / self.total)
        if self.total_bytes:
            return min(1.0, self.bytes_read / self.total_bytes)
        return None

    def measure(self, now: float) -> tuple[float | None, float | None]:
        """(units per second, seconds left) over the last `window` seconds; None where not known yet."""
        fraction = self.fraction()
        samples = self._samples
        if now - samples[-1][0] >= _SPACING:
            samples.append((now, self.done, fraction))
        while len(samples) > 1 and samples[1][0] <= now - self.window:
            samples.popleft()
        since, done_then, fraction_then = samples[0]
        span = now - since
        if span <= 0:
            return None, None
        rate = (self.done - done_then) / span
        left = None
        if fraction is not None and fraction_then is not None:
            if fraction >= 1.0:
                left = 0.0
            elif fraction > fraction_then:
                left = (1.0 - fraction) * span / (fraction - fraction_then)
        return rate, left

    def count_text(self) -> str:
        total = f"/{self.total:,}" if self.total else ""
        return f"{self.done:,}{total} {self.unit}"

    def figures(self, now: float) -> list[str]:
        """The parts after the count: percentage, rate, time left, elapsed, note."""
        rate, left = self.measure(now)
        fraction = self.fraction()
        parts = []
        if fraction is not None:
            parts.append(f"{fraction:.1%}" if self.total else f"{fraction:.1%} of the input")
        if rate is not None:
            parts.append(f"{rate_text(rate)} {self.unit}/s")
        if left is not None:
            parts.append(f"{clock_time(left)} left")
        parts.append(f"{clock_time(now - self.started)} elapsed")
        if self.note:
            parts.append(self.note)
        return parts

    def line(self, stage: str, now: float) -> str:
        """The plain progress line: `clipdpo STAGE: COUNT (PCT), RATE, LEFT left, ELAPSED elapsed[, NOTE]`."""
        figures = self.figures(now)
        if self.fraction() is not None:
            count = f"{self.count_text()} ({figures[0]})"
            figures = figures[1:]
        else:
            count = self.count_text()
        return f"clipdpo {stage}: " + ", ".join([count, *figures])


class LineTicker:
    """When the plain lines are due: every `every` seconds from the start, on a fixed grid (an interval
    slept through gives one line, not a burst)."""

    def __init__(self, every: float, started: float) -> None:
        self.every = every
        self.next_due = started + every

    def due(self, now: float) -> bool:
        if now < self.next_due:
            return False
        missed = int((now - self.next_due) // self.every)
        self.next_due += (missed + 1) * self.every
        return True


class Progress:
    """The display of one piece of long work, used as a context manager around it.

    `poll`, when given, is called before each display to refresh the state from counters kept elsewhere
    (it runs in the display's thread: it should only read plain numbers). `terminal` defaults to whether
    `stream` (stderr) is a terminal.
    """

    def __init__(
        self,
        stage: str,
        *,
        unit: str = "records",
        total: int | None = None,
        total_bytes: int | None = None,
        quiet: bool = False,
        every: float = DEFAULT_EVERY,
        poll: Callable[[ProgressState], None] | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        terminal: bool | None = None,
    ) -> None:
        self.stage = stage
        self.state = ProgressState(unit, total, total_bytes, clock)
        self.every = every
        self._poll = poll
        self._stream = stream if stream is not None else sys.stderr
        terminal = self._stream.isatty() if terminal is None else terminal
        self.mode = "off" if quiet else "bar" if terminal else "lines" if every > 0 else "off"
        self._bar: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def update(
        self,
        done: int | None = None,
        *,
        advance: int = 0,
        bytes_read: int | None = None,
        note: str | None = None,
    ) -> None:
        """Record progress (cheap: the display reads it on its own schedule)."""
        state = self.state
        if done is not None:
            state.done = done
        state.done += advance
        if bytes_read is not None:
            state.bytes_read = bytes_read
        if note is not None:
            state.note = note

    def __enter__(self) -> Progress:
        self.state.restart()
        if self.mode == "bar":
            self._start_bar()
        elif self.mode == "lines":
            self._thread = threading.Thread(target=self._print_lines, name="clipdpo-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def current_line(self) -> str:
        if self._poll is not None:
            self._poll(self.state)
        return self.state.line(self.stage, self.state.clock())

    def _print_lines(self) -> None:
        ticker = LineTicker(self.every, self.state.started)
        clock = self.state.clock
        while not self._stop.wait(max(0.0, ticker.next_due - clock())):
            if ticker.due(clock()):
                print(self.current_line(), file=self._stream, flush=True)

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import Progress as RichProgress
        from rich.progress import ProgressColumn, TextColumn
        from rich.progress_bar import ProgressBar
        from rich.text import Text

        display = self

        class Figures(ProgressColumn):
            """The live count or figures, read from the state at each refresh."""

            def __init__(self, part: str) -> None:
                super().__init__()
                self.part = part

            def render(self, task: Any) -> Any:
                state = display.state
                if self.part == "count":
                    if display._poll is not None:
                        display._poll(state)
                    return Text(state.count_text())
                if self.part == "bar":
                    fraction = state.fraction()
                    return ProgressBar(total=1.0, completed=fraction or 0.0, width=20, pulse=fraction is None)
                return Text(", ".join(state.figures(state.clock())))

        columns = [TextColumn(f"[bold]{self.stage}[/]"), Figures("count"), Figures("bar"), Figures("figures")]
        console = Console(file=self._stream, force_terminal=True)  # only drawn where stderr is a terminal
        # stdout carries data: only stderr writes (log lines) are shown above the bar
        self._bar = RichProgress(*columns, console=console, transient=True, redirect_stdout=False)
        self._bar.start()
        self._bar.add_task(self.stage, total=None)
