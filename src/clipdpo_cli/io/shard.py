"""Deterministic sharding: `--shard K/N` or SLURM's array variables.

From SLURM: K = (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP and
N = SLURM_ARRAY_TASK_COUNT, so `--array=0-9`, `--array=1-10` and `--array=0-18:2` all give shards 0..N-1.
An array whose task ids are not such a range (`--array=1,4,9`) cannot be mapped: pass --shard K/N.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.io.errors import UsageError


@dataclass(frozen=True)
class Shard:
    """Shard `index` (0-based) of `count`. Records are assigned by a CRC32 of their shard key."""

    index: int = 0
    count: int = 1
    # Where an implicit shard came from ("SLURM_ARRAY_TASK_ID=3 of SLURM_ARRAY_TASK_COUNT=4"); "" for --shard.
    origin: str = field(default="", compare=False)

    @property
    def is_whole(self) -> bool:
        return self.count == 1

    def owns(self, key: str) -> bool:
        return self.count == 1 or zlib.crc32(key.encode("utf-8")) % self.count == self.index

    @classmethod
    def parse(cls, spec: str | None, environ: dict[str, str] | None = None) -> Shard:
        """Parse 'K/N'; without a spec, take SLURM's array variables when both are set."""
        env = os.environ if environ is None else environ
        if spec is None or spec == "":
            task, count = env.get("SLURM_ARRAY_TASK_ID"), env.get("SLURM_ARRAY_TASK_COUNT")
            if task is None or count is None:
                return cls()
            first = env.get("SLURM_ARRAY_TASK_MIN", "0")
            step = env.get("SLURM_ARRAY_TASK_STEP", "1")
            try:
                offset, stride = int(task) - int(first), int(step)
                if stride < 1 or offset % stride:
                    raise ValueError
                shard = cls._checked(offset // stride, int(count))
                origin = f"SLURM_ARRAY_TASK_ID={task} of SLURM_ARRAY_TASK_COUNT={count}"
                return cls(shard.index, shard.count, origin)
            except ValueError:
                raise UsageError(
                    f"cannot shard from SLURM_ARRAY_TASK_ID={task} SLURM_ARRAY_TASK_MIN={first} "
                    f"SLURM_ARRAY_TASK_STEP={step} SLURM_ARRAY_TASK_COUNT={count} (an array of ids "
                    "that is not one range with a step); pass --shard K/N"
                ) from None
        try:
            k, n = spec.split("/")
            return cls._checked(int(k), int(n))
        except ValueError:
            raise UsageError(f"--shard must look like K/N with 0 <= K < N, got '{spec}'") from None

    def describe(self) -> str:
        """'shard 1/4 from SLURM_ARRAY_TASK_ID=1 of SLURM_ARRAY_TASK_COUNT=4' (K/N as --shard takes it)."""
        where = f" from {self.origin}" if self.origin else ""
        return f"shard {self.index}/{self.count}{where}"

    @classmethod
    def _checked(cls, index: int, count: int) -> Shard:
        if count < 1 or not 0 <= index < count:
            raise ValueError
        return cls(index, count)


def shard_key(record: dict[str, Any]) -> str:
    """Records of one image always land in the same shard (grouped stages rely on it)."""
    image = record.get("image")
    if isinstance(image, str):
        return image
    return str(record.get("id", ""))
