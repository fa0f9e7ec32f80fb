"""Pair records (what `pair` writes): the one check of a pair's fields, shared by every reader of pairs.

`train` (train/data.py), the reference log-prob pass (`ref-logps`, stages/ref_logps.py) and `export`
(stages/export.py) read a pair through `pair_row`, so a pair one of them refuses the others refuse too, with
the same message.
"""

from __future__ import annotations

from typing import Any

from clipdpo_cli.io.errors import BadRecord
from clipdpo_cli.io.images import resolve_image, verify_image
from clipdpo_cli.io.records import require

REF_FIELDS = ("ref_chosen_logps", "ref_rejected_logps")


def pair_row(
    record: dict[str, Any], image_root: str | None = None, check_image: bool = True
) -> dict[str, Any]:
    """The training row of one pair record; BadRecord when a field is missing or (check_image) the image does
    not decode (missing, corrupt, truncated or too large: io.images.verify_image)."""
    row = {
        "id": str(record.get("id", "")),
        "image": resolve_image(require(record, "image"), image_root),
        "prompt": require(record, "prompt"),
        "chosen": require(record, "chosen"),
        "rejected": require(record, "rejected"),
    }
    if not row["chosen"].strip() or not row["rejected"].strip():
        raise BadRecord("empty chosen or rejected text", reason="empty answer")
    for name in REF_FIELDS:
        if name in record:
            row[name] = float(require(record, name, "number"))
    if check_image:
        verify_image(row["image"])
    return row
