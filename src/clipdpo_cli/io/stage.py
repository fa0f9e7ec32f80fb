"""What a stage function sees besides its records: counters, the error policy, the rejects sink."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.io.errors import BadRecord, RecordFailure
from clipdpo_cli.io.log import say
from clipdpo_cli.io.records import record_key

OnError = str  # "fail" | "skip"

# What a batch selector returns for a bad record that ctx.bad already counted.
SKIPPED: Any = object()

DUPLICATE = "duplicate id"  # the reason counted for a repeated record (StageContext.duplicate)


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
    notes: list[str] = field(default_factory=list)  # facts about the input (io.sources), the shard
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
        parts += self.notes
        return f"clipdpo {self.stage}: " + "; ".join(parts) + f"; {seconds:.2f} s"


class StageContext:
    """Passed to every stage function. The defaults suit library use: bad records raise, drops count."""

    def __init__(
        self,
        stage: str = "stage",
        on_error: OnError = "fail",
        rejects: Callable[[dict[str, Any]], None] | None = None,
        log: Callable[[str], None] | None = None,
        done: set[Any] | frozenset[Any] = frozenset(),
        rejected: set[Any] | frozenset[Any] = frozenset(),
    ) -> None:
        if on_error not in ("fail", "skip"):
            raise ValueError(f"on_error must be 'fail' or 'skip', not {on_error!r}")
        self.stats = RunStats(stage)
        self.on_error = on_error
        self._rejects = rejects
        self._log = log or say
        # --resume: the id keys (io.records.id_key) already in the output or in the rejects file. A stage
        # may skip work for them; none of them is written again, to the output or to the rejects.
        self.done = done
        self.rejected = rejected  # the keys (io.records.record_key) of the records in the rejects file

    @property
    def has_rejects(self) -> bool:
        return self._rejects is not None

    def drop(self, record: dict[str, Any], reason: str) -> None:
        """Count a record that a rule removed; with --rejects it is written there with its reason.

        Under --resume a record already in the rejects file is done: counted as resumed, not written again.
        """
        if self.rejected and self._rejects is not None and self._already_rejected(record, reason):
            self.stats.resumed += 1
            return
        self.stats.dropped[reason] += 1
        self.reject(record, reason)

    def reject(self, record: dict[str, Any], reason: str) -> None:
        """Write a dropped record with its reason to --rejects (when given and not there yet); no count."""
        if self._rejects is not None:
            rejected = {**record, "reject_reason": reason}
            if not self.rejected or record_key(rejected) not in self.rejected:
                self._rejects(rejected)

    def _already_rejected(self, record: dict[str, Any], reason: str) -> bool:
        key = record_key(record) if "id" in record else record_key({**record, "reject_reason": reason})
        return key in self.rejected

    def duplicate(self, record: dict[str, Any]) -> None:
        """Count a record whose id was already seen where ids must be unique (an image group): it is left
        out, and not written to --rejects, since the record it repeats is judged (and written) already."""
        self.stats.dropped[DUPLICATE] += 1

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
