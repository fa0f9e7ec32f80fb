"""CHAIR of descriptions: the reference's counting (LisaAnne/Hallucination utils/chair.py,
`CHAIR.compute_chair`), with recall and length beside it.

Per description: its object mentions (node words, repeats counted) and those not among the image's
ground-truth objects (hallucinated). Over all descriptions:
  CHAIRs  descriptions with at least one hallucinated mention / descriptions
  CHAIRi  hallucinated mentions / all object mentions (0 mentions: null; the reference divides by zero)
  recall  ground-truth objects mentioned / ground-truth objects, summed over descriptions (the coverage
          AMBER calls Cover, the recall of OPERA's and RLHF-V's CHAIR scripts)
  length  mean words of a description (split on whitespace)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from clipdpo_cli.eval.chair.coco import CocoTruth
from clipdpo_cli.io.errors import InputError

_IMAGE_ID = re.compile(r"(\d+)\.[A-Za-z]+$")


def image_id_of(record: dict[str, Any], where: str) -> int:
    """The COCO image id of a response: its `image_id`, else the number in its image's file name
    (COCO_val2014_000000310196.jpg -> 310196)."""
    value = record.get("image_id")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _IMAGE_ID.search(str(record.get("image", "")))
    if match is None:
        raise InputError(
            f"{where}: no COCO image id (an 'image_id' field, or an image named like "
            "COCO_val2014_000000310196.jpg)"
        )
    return int(match.group(1))


def score_description(text: str, truth: set[str], words: Any) -> dict[str, Any]:
    """One description's mentions, hallucinated mentions and covered ground-truth objects."""
    mentioned, nodes = words.caption_words(text)
    hallucinated = [(w, n) for w, n in zip(mentioned, nodes, strict=True) if n not in truth]
    return {
        "mentions": len(nodes),
        "hallucinated": hallucinated,
        "covered": len(set(nodes) & truth),
        "truth": len(truth),
        "words": len(text.split()),
    }


def score_responses(
    truth: CocoTruth,
    responses: Iterable[dict[str, Any]],
    details: list | None = None,
) -> dict[str, Any]:
    """The result object over the responses in order (each counted once per record, as the reference counts
    each caption). `details`, when given, receives one record per response with its words."""
    captions = hallucinated_captions = mentions = hallucinated = covered = truth_total = words = 0
    unknown: list[int] = []
    for n, record in enumerate(responses, 1):
        where = f"response {n} (id {record.get('id')!r})"
        text = record.get("response")
        if not isinstance(text, str):
            raise InputError(f"{where}: field 'response' must be a string")
        image_id = image_id_of(record, where)
        if image_id not in truth.images:
            unknown.append(image_id)
        gt = truth.objects(image_id)
        one = score_description(text, gt, truth.words)
        captions += 1
        hallucinated_captions += bool(one["hallucinated"])
        mentions += one["mentions"]
        hallucinated += len(one["hallucinated"])
        covered += one["covered"]
        truth_total += one["truth"]
        words += one["words"]
        if details is not None:
            details.append(
                {
                    "id": record.get("id"),
                    "image_id": image_id,
                    "hallucinated": [w for w, _ in one["hallucinated"]],
                    "mentioned": truth.words.caption_words(text)[1],
                    "truth": sorted(gt),
                }
            )
    if unknown:
        raise InputError(
            f"{len(unknown):,} response(s) name an image that is not in the COCO instance file "
            f"(first: image id {unknown[0]}); give the annotations of the images answered"
        )
    if not captions:
        raise InputError("no responses to score")
    return {
        "benchmark": "chair",
        "CHAIRs": hallucinated_captions / captions,
        "CHAIRi": hallucinated / mentions if mentions else None,
        "recall": covered / truth_total if truth_total else None,
        "length": words / captions,
        "counts": {
            "responses": captions,
            "hallucinated_responses": hallucinated_captions,
            "mentions": mentions,
            "hallucinated_mentions": hallucinated,
            "truth_objects": truth_total,
            "covered_objects": covered,
        },
    }


def format_table(result: dict[str, Any]) -> str:
    def pct(v: float | None) -> str:
        return f"{'-':>8}" if v is None else f"{100 * v:>8.2f}"

    head = f"{'CHAIR':<8}{'CHAIRs':>8}{'CHAIRi':>8}{'Recall':>8}{'Len':>8}{'n':>7}"
    row = (
        f"{'':<8}{pct(result['CHAIRs'])}{pct(result['CHAIRi'])}{pct(result['recall'])}"
        f"{result['length']:>8.1f}{result['counts']['responses']:>7,}"
    )
    return head + "\n" + row
