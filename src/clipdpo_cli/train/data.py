"""Pair records -> TRL's conversational vision preference data, images opened per batch.

The dataset holds strings only (image path, prompt, chosen, rejected, optional reference log-probs), so 750K
pairs cost a few hundred MB of Arrow memory and no decoded pixels. `VisionPairCollator` opens the images of
one batch and encodes them with the project's one conversation encoding (models/conversation.py) into the
tensors TRL's DPO and KTO trainers take.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from clipdpo_cli.io.errors import BadRecord, InputError
from clipdpo_cli.io.images import load_image, verify_image
from clipdpo_cli.io.log import warning
from clipdpo_cli.io.pairs import REF_FIELDS, pair_row

PAIR_COLUMNS = ("id", "image", "prompt", "chosen", "rejected")


@dataclass
class PairColumns:
    """Validated pairs, column-wise (what datasets.Dataset.from_dict takes), plus what was skipped and why."""

    columns: dict[str, list[Any]] = field(default_factory=lambda: {c: [] for c in PAIR_COLUMNS})
    skipped: dict[str, int] = field(default_factory=dict)
    ref_model: str | None = None

    def __len__(self) -> int:
        return len(self.columns["id"])

    @property
    def has_ref(self) -> bool:
        return all(f in self.columns for f in REF_FIELDS) and len(self) > 0


CHECK_CHUNK = 1024  # pairs validated at a time: their new images are checked in parallel


def image_error(path: str) -> BadRecord | None:
    """None when the image at `path` decodes, else its BadRecord."""
    try:
        verify_image(path)
    except BadRecord as exc:
        return exc
    return None


def collect_pairs(
    records: Iterable[dict[str, Any]],
    image_root: str | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
) -> PairColumns:
    """Validate pair records into columns. A bad record stops with InputError, or is counted with skip_bad.

    Every distinct image is decoded once, by `workers` threads (default: up to 8), so an image that is
    missing, corrupt, truncated or too large is an error here, before training, naming its pair (the first
    bad pair of the input), and not a DataLoader worker's traceback mid-run.
    Reference log-probs (ref_chosen_logps, ref_rejected_logps) are kept only when every record has them.
    """
    out = PairColumns()
    refs: dict[str, list[float]] | None = {f: [] for f in REF_FIELDS}  # None once a row lacks them
    workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="clipdpo-check") if workers > 1 else None
    try:
        for n, record, row in checked_rows(records, image_root, pool):
            if isinstance(row, BadRecord):
                if not skip_bad:
                    raise InputError(f"pair {n} (id {record.get('id', '?')}): {row}")
                out.skipped[row.reason] = out.skipped.get(row.reason, 0) + 1
                continue
            for c in PAIR_COLUMNS:
                out.columns[c].append(row[c])
            refs = add_refs(out, refs, row, record)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if refs is not None and len(out):
        out.columns.update(refs)
    else:
        out.ref_model = None
    return out


def checked_rows(
    records: Iterable[dict[str, Any]], image_root: str | None, pool: ThreadPoolExecutor | None
) -> Iterator[tuple[int, dict[str, Any], Any]]:
    """(n, record, its pair row or BadRecord) of every record, in order, numbered from 1; read in chunks of
    CHECK_CHUNK whose new images are checked in parallel (each distinct image once)."""
    checked: dict[str, BadRecord | None] = {}  # image -> its error (None: it decodes)
    numbered = enumerate(records, 1)
    while chunk := list(islice(numbered, CHECK_CHUNK)):
        rows: list[tuple[int, dict[str, Any], Any]] = []
        for n, record in chunk:
            try:
                rows.append((n, record, pair_row(record, image_root, check_image=False)))
            except BadRecord as exc:
                rows.append((n, record, exc))
        images = dict.fromkeys(row["image"] for _, _, row in rows if isinstance(row, dict))
        new = [image for image in images if image not in checked]
        checked.update(zip(new, pool.map(image_error, new) if pool else map(image_error, new), strict=True))
        for n, record, row in rows:
            if isinstance(row, dict) and checked[row["image"]] is not None:
                row = checked[row["image"]]
            yield n, record, row


def add_refs(
    out: PairColumns, refs: dict[str, list[float]] | None, row: dict[str, Any], record: dict[str, Any]
) -> dict[str, list[float]] | None:
    """Append a row's reference log-probs while every row so far had them; None from the first that lacks
    them. The pairs' ref_model is the first one a record names."""
    if refs is None or not all(f in row for f in REF_FIELDS):
        return None
    for f in REF_FIELDS:
        refs[f].append(row[f])
    out.ref_model = out.ref_model or record.get("ref_model")
    return refs


def to_dataset(pairs: PairColumns, with_ref: bool | None = None) -> Any:
    """A datasets.Dataset of the pairs (strings, plus reference log-probs when present and wanted)."""
    from datasets import Dataset

    columns = dict(pairs.columns)
    if with_ref is False or not pairs.has_ref:
        for f in REF_FIELDS:
            columns.pop(f, None)
    return Dataset.from_dict(columns)


def unpair(pairs: PairColumns, group: int, seed: int = 0) -> dict[str, list[Any]]:
    """KTO's unpaired format: each pair gives (chosen, label True) and (rejected, label False).

    TRL's vision KTO collator estimates the KL term from each example's prompt with its neighbour's
    completion, so the neighbour must come from another image. Pairs are shuffled (seeded) and laid out in
    blocks of `group` pairs as [chosen_1..chosen_g, rejected_1..rejected_g]: with group = batch size / 2 and
    sequential sampling, no example ever meets its own image's completion.
    """
    n = len(pairs)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    cols = pairs.columns
    out: dict[str, list[Any]] = {"id": [], "image": [], "prompt": [], "completion": [], "label": []}
    group = max(1, group)
    for start in range(0, n, group):
        block = order[start : start + group]
        for answer, label in (("chosen", True), ("rejected", False)):
            for i in block:
                out["id"].append(f"{cols['id'][i]}:{answer}")
                out["image"].append(cols["image"][i])
                out["prompt"].append(cols["prompt"][i])
                out["completion"].append(cols[answer][i])
                out["label"].append(label)
    return out


@dataclass
class VisionPairCollator:
    """Opens a batch's images and encodes it for TRL (paired DPO, or KTO's unpaired rows).

    The ids come from models.conversation.ChatEncoding, the encoding generation uses, so training sees the
    prompt the model is prompted with (BOS included) and completions that end with the end-of-turn token.
    Reference log-probs, when the rows carry them, come out as `ref_chosen_logps` / `ref_rejected_logps`
    tensors (what DPOTrainer reads when the reference is precomputed). `max_text` cuts each row to that
    many text tokens; its image tokens come on top and are never cut.
    """

    processor: Any
    max_text: int | None = None
    unpaired: bool = False
    calculate_kl: bool = True
    encoding: Any = None
    warned: bool = False  # about rows that --max-length left without answer tokens (said once)

    def __post_init__(self) -> None:
        from clipdpo_cli.models.conversation import ChatEncoding

        self.encoding = ChatEncoding(self.processor)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        images = [load_image(r["image"]) if isinstance(r["image"], str) else r["image"] for r in rows]
        prompts = [r["prompt"] for r in rows]
        if self.unpaired:
            batch = self.encoding.unpaired_batch(
                images, prompts, [r["completion"] for r in rows], self.calculate_kl, self.max_text
            )
            batch["label"] = torch.tensor([bool(r["label"]) for r in rows])
            self.warn_if_no_answer(batch)
            return batch
        batch = self.encoding.preference_batch(
            images, prompts, [r["chosen"] for r in rows], [r["rejected"] for r in rows], self.max_text
        )
        self.warn_if_no_answer(batch)
        if all(f in rows[0] for f in REF_FIELDS):
            for f in REF_FIELDS:
                batch[f] = torch.tensor([float(r[f]) for r in rows], dtype=torch.float32)
        return batch

    def warn_if_no_answer(self, batch: dict[str, Any]) -> None:
        """One stderr line the first time --max-length leaves a row no answer token (a constant loss)."""
        if self.warned or self.max_text is None:
            return
        empty = int((batch["completion_mask"].sum(dim=1) == 0).sum())
        if empty:
            self.warned = True
            warning(
                "train",
                f"--max-length {self.max_text} leaves {empty} of "
                f"{len(batch['completion_mask'])} rows of a batch no answer tokens (the prompt's text alone "
                "fills it); those pairs add a constant loss",
            )
