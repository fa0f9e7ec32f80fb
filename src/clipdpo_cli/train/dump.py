"""`clipdpo train --dry-run`: encode the first pairs exactly as training will, optionally dump them, stop.

Each dumped line is one pair: `id`, `prompt_ids`, `chosen_ids`, `rejected_ids` (lists of ints, padding
removed, after `--max-length`), and the same as token strings (`prompt_tokens`, ...), so a template or
tokenizer problem (a missing BOS or end-of-turn token, a stray space) shows without training anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from clipdpo_cli.train.data import PairColumns, VisionPairCollator, to_dataset


def encoded_pairs(
    processor: Any, pairs: PairColumns, rows: int, max_text: int | None = None, batch_size: int = 8
) -> Iterator[dict[str, Any]]:
    """The first `rows` pairs as the training collator encodes them."""
    collator = VisionPairCollator(processor, max_text)
    tokenizer = processor.tokenizer
    dataset = to_dataset(pairs, with_ref=False)
    n = min(rows, len(dataset))
    for start in range(0, n, batch_size):
        chunk = [dataset[i] for i in range(start, min(n, start + batch_size))]
        batch = collator(chunk)
        for i, row in enumerate(chunk):
            prompt, chosen = collator.encoding.split_rows(batch, i)
            _, rejected = collator.encoding.split_rows(batch, i + len(chunk))
            out: dict[str, Any] = {"id": row["id"]}
            for name, ids in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected)):
                out[f"{name}_ids"] = ids
            for name in ("prompt", "chosen", "rejected"):
                out[f"{name}_tokens"] = tokenizer.convert_ids_to_tokens(out[f"{name}_ids"])
            yield out


def run_dry(settings: Any, dump_path: str | None, rows: int) -> dict[str, Any]:
    """Validate the pairs, load the processor, encode the first rows (and write them to `dump_path`)."""
    from clipdpo_cli.io.errors import InputError
    from clipdpo_cli.io.jsonl import JsonlWriter, read_jsonl
    from clipdpo_cli.train.data import collect_pairs
    from clipdpo_cli.train.loading import load_processor, text_max_length

    pairs = collect_pairs(read_jsonl(settings.pairs), settings.image_root, skip_bad=settings.skip_bad)
    if not len(pairs):
        raise InputError(f"{settings.pairs}: no usable pairs")
    processor = load_processor(settings.model, settings.chat_template, settings.max_pixels)
    encoded = list(encoded_pairs(processor, pairs, rows, text_max_length(settings.max_length)))
    if dump_path is not None:
        with JsonlWriter(None if dump_path == "-" else dump_path) as writer:
            for record in encoded:
                writer.write(record)
    longest = max(len(e["prompt_ids"]) + max(len(e["chosen_ids"]), len(e["rejected_ids"])) for e in encoded)
    empty = sum(not e["chosen_ids"] or not e["rejected_ids"] for e in encoded)
    return {"dry_run": True, "pairs": len(pairs), "skipped": pairs.skipped, "encoded": len(encoded),
            "longest_row_tokens": longest, "rows_without_answer_tokens": empty,
            "dump": dump_path}  # fmt: skip
