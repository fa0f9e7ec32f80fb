"""The Sec. 3.1 / Fig. 2 probe: how an LVLM and CLIP-style scorers rank originals against hallucinations.

Records are originals (`hallucination: "none"`) and variants (`hallucination: existence | attribute |
relation`, `from`: the original's id), each with score fields where higher is better. Per type, and over
all types, it counts for each field how often the variant is ranked above, below or level with its
original; of the variants the LVLM prefers (LVLM field higher than the original's), it counts those each
scorer corrects (ranks the original strictly higher). Pure functions: no I/O.
"""

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.io.setting import setting

ORIGINAL = "none"
TYPES = ("existence", "attribute", "relation")  # the paper's order; other type names follow, sorted

# One usable variant: its type, the LVLM comparison (None without an LVLM field) and one per scorer.
# A comparison is 1 (variant higher), -1 (original higher) or 0 (tie).
Row = tuple[str, int | None, tuple[int, ...]]


@dataclass(frozen=True)
class ProbeSettings:
    """The fields `clipdpo probe` compares (each is also one of its options)."""

    lvlm_field: str = setting(
        "lvlm_logp", "The LVLM's mean log-likelihood field (optional: absent, scorers only)."
    )
    score_field: tuple[str, ...] = setting(
        ("clip_score",), "A scorer's score field, higher = better (repeatable; default clip_score).",
        cli_type=list[str] | None, cli_default=None, parse=lambda fields: tuple(fields or ("clip_score",)),
        aliases=("--scorer-field",), show_default=False,
    )  # fmt: skip


def merge_by_id(records: Iterable[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """Records with the same `id` merged field by field (a later record's value wins), in first-seen order."""
    merged: dict[Any, dict[str, Any]] = {}
    for record in records:
        key = record["id"]
        if key in merged:
            merged[key].update(record)
        else:
            merged[key] = dict(record)
    return merged


def _number(record: Mapping[str, Any], field: str) -> float | str:
    """The field's value, or the reason it cannot be compared."""
    if field not in record:
        return f"missing field '{field}'"
    value = record[field]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"non-numeric field '{field}'"
    return value


def _compare(variant: float, original: float) -> int:
    return (variant > original) - (variant < original)


def _rows(
    records: Mapping[Any, Mapping[str, Any]], fields: Sequence[str], with_lvlm: bool
) -> tuple[list[Row], Counter[str], int, int]:
    """Usable variants, skip reasons, and the counts of originals and variants seen."""
    originals = {key: r for key, r in records.items() if r.get("hallucination") == ORIGINAL}
    rows: list[Row] = []
    skipped: Counter[str] = Counter()
    seen = 0
    for record in records.values():
        kind = record.get("hallucination")
        if kind == ORIGINAL:
            continue
        seen += 1
        if not isinstance(kind, str) or not kind:
            skipped["no hallucination type"] += 1
            continue
        source = record.get("from")
        original = originals.get(source) if isinstance(source, str | int) else None  # a list: unhashable
        if original is None:
            skipped["original missing"] += 1
            continue
        comparisons: list[int] = []
        for field in fields:
            v, o = _number(record, field), _number(original, field)
            if isinstance(v, str) or isinstance(o, str):
                skipped[v if isinstance(v, str) else str(o)] += 1
                break
            comparisons.append(_compare(v, o))
        else:
            lvlm = comparisons.pop(0) if with_lvlm else None
            rows.append((kind, lvlm, tuple(comparisons)))
    return rows, skipped, len(originals), seen


def _ranks(comparisons: Iterable[int]) -> dict[str, int]:
    counts = Counter(comparisons)
    return {"ranks_variant_higher": counts[1], "ranks_original_higher": counts[-1], "ties": counts[0]}


def _summary(rows: Sequence[Row], scorers: Sequence[str], with_lvlm: bool) -> dict[str, Any]:
    prefers = [r for r in rows if r[1] == 1]
    k = len(prefers) if with_lvlm else None
    out: dict[str, Any] = {
        "variants": len(rows),
        "lvlm_prefers": k,
        "lvlm": _ranks(r[1] for r in rows if r[1] is not None) if with_lvlm else None,
        "scorers": {},
    }
    for i, field in enumerate(scorers):
        entry: dict[str, Any] = _ranks(r[2][i] for r in rows)
        corrects = sum(1 for r in prefers if r[2][i] == -1)
        entry["corrects_lvlm"] = corrects if with_lvlm else None
        entry["corrects_lvlm_pct"] = round(100 * corrects / k, 2) if k else None
        out["scorers"][field] = entry
    return out


def probe(
    records: Mapping[Any, Mapping[str, Any]],
    lvlm_field: str = "lvlm_logp",
    scorer_fields: Sequence[str] = ("clip_score",),
) -> dict[str, Any]:
    """The probe's result over merged records (see the module docstring and docs/probe.md).

    Without the LVLM field in any record, `lvlm_prefers`, `lvlm` and `corrects_lvlm*` are null. A variant
    lacking its original or a comparable field is skipped and counted per reason; InputError when no
    variant at all is usable.
    """
    scorers = list(dict.fromkeys(scorer_fields))
    if lvlm_field in scorers:
        raise UsageError(f"'{lvlm_field}' is the LVLM field: it cannot also be a --score-field")
    if not records:
        raise InputError("the input holds no records")
    with_lvlm = any(lvlm_field in r for r in records.values())
    fields = [lvlm_field, *scorers] if with_lvlm else scorers
    rows, skipped, n_originals, n_variants = _rows(records, fields, with_lvlm)
    if not rows:
        if not n_variants:
            raise InputError(f"no hallucinated variants in the input (only {n_originals} originals)")
        reasons = ", ".join(f"{reason}: {n}" for reason, n in skipped.most_common())
        raise InputError(f"no usable variant: all {n_variants} skipped ({reasons})")
    present = {r[0] for r in rows}
    kinds = [t for t in TYPES if t in present] + sorted(present - set(TYPES))
    return {
        "types": {t: _summary([r for r in rows if r[0] == t], scorers, with_lvlm) for t in kinds},
        "all": _summary(rows, scorers, with_lvlm),
        "fields": {"lvlm": lvlm_field, "lvlm_present": with_lvlm, "scorers": scorers},
        "input": {"records": len(records), "originals": n_originals, "variants": n_variants},
        "skipped": dict(skipped.most_common()),
    }


def _pct(part: int, whole: int | None) -> str:
    return f"{100 * part / whole:.1f}" if whole else "-"


def format_table(result: Mapping[str, Any]) -> str:
    """Fig. 2 as text: per type, n, how many the LVLM prefers, and the % each scorer corrects.

    Without an LVLM field: the % of variants each scorer ranks below their original instead.
    """
    fields = result["fields"]
    with_lvlm = fields["lvlm_present"]
    suffix = "% corrected" if with_lvlm else "% orig. higher"
    head = ["", "n", *(["LVLM prefers"] if with_lvlm else []), *(f"{f} {suffix}" for f in fields["scorers"])]
    body = []
    for name, s in [*result["types"].items(), ("all", result["all"])]:
        row = [name, str(s["variants"])]
        if with_lvlm:
            row.append(str(s["lvlm_prefers"]))
        for entry in s["scorers"].values():
            if with_lvlm:
                row.append(_pct(entry["corrects_lvlm"], s["lvlm_prefers"]))
            else:
                row.append(_pct(entry["ranks_original_higher"], s["variants"]))
        body.append(row)
    widths = [max(len(r[i]) for r in (head, *body)) for i in range(len(head))]
    title = f"probe: LVLM field '{fields['lvlm']}'" if with_lvlm else "probe: no LVLM field, scorers only"
    lines = [title]
    for row in (head, *body):
        cells = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
        lines.append("  " + "  ".join(cells).rstrip())
    if result["skipped"]:
        reasons = "; ".join(f"{reason}: {n}" for reason, n in result["skipped"].items())
        lines.append(f"  {sum(result['skipped'].values())} variants skipped: {reasons}")
    return "\n".join(lines)
