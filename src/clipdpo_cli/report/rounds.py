"""One table of the rounds of examples/iterate.sh: `python -m clipdpo_cli.report.rounds OUT`.

Reads OUT/round0-amber.json (the starting model, when evaluated) and each OUT/roundR/{round.json,
train-summary.json, amber.json}; writes OUT/rounds.json (one row per round) and OUT/rounds.txt, and prints
the text table. A round without an AMBER result has no metric columns.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

METRICS = ("CHAIR", "Cover", "Hal", "Cog")


def _read(path: str) -> Any:
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return None
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError:  # train's stdout: the summary is its last JSON line
        lines = [line for line in text.splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else None


def _amber(path: str) -> dict[str, Any]:
    result = _read(path)
    gen = (result or {}).get("generative") or {}
    return {k: gen.get(k) for k in METRICS if gen.get(k) is not None}


def round_rows(out: str) -> list[dict[str, Any]]:
    """Round 0 (when evaluated) and every finished round, in order."""
    rows = []
    start = _amber(os.path.join(out, "round0-amber.json"))
    if start:
        rows.append({"round": 0, **start})
    numbers = sorted(int(m.group(1)) for name in os.listdir(out) if (m := re.fullmatch(r"round(\d+)", name)))
    for r in numbers:
        d = os.path.join(out, f"round{r}")
        info = _read(os.path.join(d, "round.json"))
        if info is None:
            continue
        train = _read(os.path.join(d, "train-summary.json")) or {}
        row = {
            "round": r, "model": info["model"], "reference": info["reference"], "pairs": info["pairs"],
            "steps": train.get("steps"), "reward_accuracy": train.get("last_rewards/accuracies"),
            **_amber(os.path.join(d, "amber.json")),
        }  # fmt: skip
        rows.append(row)
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    cols = ["round", "pairs", "steps", *[m for m in METRICS if any(m in r for r in rows)], "model"]
    table = [cols] + [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in table
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m clipdpo_cli.report.rounds OUT", file=sys.stderr)
        raise SystemExit(2)
    out = args[0]
    rows = round_rows(out)
    text = format_rows(rows)
    with open(os.path.join(out, "rounds.json"), "w", encoding="utf-8") as fh:
        json.dump(rows, fh, indent=1)
    with open(os.path.join(out, "rounds.txt"), "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
