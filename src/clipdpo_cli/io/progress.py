"""A progress display on stderr, shown only on a terminal and never with --quiet."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any


class Progress:
    """Counts records as they are read; draws a rich bar (bytes when the input size is known)."""

    def __init__(self, stage: str, enabled: bool, total_bytes: int | None = None) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._stage = stage
        self._total = total_bytes
        self._last = 0.0

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            columns = [TextColumn(f"[bold]{self._stage}[/]"), TextColumn("{task.fields[records]:,} records")]
            if self._total:
                columns += [BarColumn(), TextColumn("{task.percentage:>3.0f}%")]
            columns.append(TimeElapsedColumn())
            self._bar = RichProgress(*columns, console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self._stage, total=self._total, records=0)
        return self

    def update(self, records: int, bytes_read: int) -> None:
        if self._bar is None:
            return
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._last = now
            self._bar.update(self._task, completed=bytes_read, records=records)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def track(self, records: Iterator[dict[str, Any]], source: Any) -> Iterator[dict[str, Any]]:
        """Yield the records unchanged, updating the display every 256 records."""
        if self._bar is None:
            yield from records
            return
        for i, record in enumerate(records, 1):
            if not i & 255:
                self.update(i, getattr(source, "bytes_read", 0))
            yield record
