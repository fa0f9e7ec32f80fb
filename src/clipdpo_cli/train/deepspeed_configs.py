"""`clipdpo train --deepspeed zero2|zero3|FILE`: the ZeRO configs shipped inside the package, or a file.

The shipped configs (clipdpo_cli/data/deepspeed/) leave batch sizes, precision and gradient clipping "auto",
so that transformers fills them from the command's options; ZeRO-3 gathers 16-bit weights on save, so the
output directory is a normal model folder. A `pip install` user has them without the repository's files.
"""

from __future__ import annotations

import os
from importlib.resources import files

from clipdpo_cli.io.errors import UsageError

SHIPPED = ("zero2", "zero3")


def shipped_config(name: str) -> str:
    """The path of a shipped config ('zero2' or 'zero3')."""
    return str(files("clipdpo_cli").joinpath("data", "deepspeed", f"{name}.json"))


def resolve_deepspeed(value: str | None) -> str | None:
    """--deepspeed: a shipped config by name (zero2, zero3), else a JSON file that must exist."""
    if value is None:
        return None
    if value in SHIPPED:
        return shipped_config(value)
    if not os.path.isfile(value):
        raise UsageError(
            f"--deepspeed file not found: {value} (or name a shipped config: {', '.join(SHIPPED)})"
        )
    return value
