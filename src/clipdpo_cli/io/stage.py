"""What a stage function sees besides its records: counters, the error policy, the rejects sink."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.io.errors import BadRecord, RecordFailure

OnError = str  # "fail" | "skip"

# What a batch selector returns for a bad record that ctx.bad already counted.
SKIPPED: Any = object()


@dataclass
class RunStats:
    """Counters for the one-line summary printed at the end of a stage."""

    stage: str = "stage"
    n_in: int = 0
    n_out: int = 0
    resumed: int = 0
    other_shards: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)

    def summary(self) -> str:
        seconds = time.perf_counter() - self.started
        parts = [f"{self.n_in:,} in, {self.n_out:,} out"]
        if self.resumed:
            parts.append(f"{self.resumed:,} already done (resume)")
        if self.dropped:
            parts.append("dropped " + ", ".join(f"{n:,} {why}" for why, n in sorted(self.dropped.items())))
        if self.skipped:
            parts.append(
                "skipped bad " + ", ".join(f"{n:,} {why}" for why, n in sorted(self.skipped.items()))
            )
        return f"clipdpo {self.stage}: " + "; ".join(parts) + f"; {seconds:.2f} s"


class StageContext:
    """Passed to every stage function. The defaults suit library use: bad records raise, drops count."""

    def __init__(
        self,
        stage: str = "stage",
        on_error: OnError = "fail",
        rejects: Callable[[dict[str, Any]], None] | None = None,
        log: Callable[[str], None] | None = None,
        done: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        if on_error not in ("fail", "skip"):
            raise ValueError(f"on_error must be 'fail' or 'skip', not {on_error!r}")
        self.stats = RunStats(stage)
        self.on_error = on_error
        self._rejects = rejects
        self._log = log or (lambda msg: print(msg, file=sys.stderr))
        self.done = done  # ids already in the output (--resume): a stage may skip work for them

    @property
    def has_rejects(self) -> bool:
        return self._rejects is not None

    def drop(self, record: dict[str, Any], reason: str) -> None:
        """Count a record that a rule removed; with --rejects it is written there with its reason."""
        self.stats.dropped[reason] += 1
        self.reject(record, reason)

    def reject(self, record: dict[str, Any], reason: str) -> None:
        """Write a dropped record with its reason to --rejects (when given); counts nothing."""
        if self._rejects is not None:
            self._rejects({**record, "reject_reason": reason})

    def bad(self, record: dict[str, Any] | None, error: BadRecord | str, where: str = "") -> None:
        """An unusable record: raise RecordFailure (--on-error fail) or count and return (skip)."""
        err = error if isinstance(error, BadRecord) else BadRecord(error)
        if self.on_error == "fail":
            if not where and record is not None:
                where = f"record {record.get('id', '?')}"
                if isinstance(record.get("image"), str):
                    where += f" (image {record['image']})"
            prefix = f"{where}: " if where else ""
            raise RecordFailure(f"{prefix}{err} (use --on-error skip to skip such records)")
        self.stats.skipped[err.reason] += 1

    def log(self, message: str) -> None:
        self._log(message)


# A keep-or-drop stage over a batch (io.runner.run_selection): it gets the records, their input lines
# (None for a record re-serialised on reading), whether all those lines are plain (io.jsonl.LineBatch)
# and the context, and returns per record None (keep it), a reason (a rule drops it) or SKIPPED.
BatchSelector = Callable[[list[dict[str, Any]], list[bytes | None], bool, StageContext], list[Any]]
