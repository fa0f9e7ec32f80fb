"""Ground truth of the miniature world: which object mentions of a caption are hallucinated, and how often
the preference pairs built by the real commands agree with it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from clipdpo_mini.world import KINDS, MiniScene

_MENTION = re.compile(r"\b(" + "|".join(KINDS) + r")(?:e?s)?\b", re.IGNORECASE)


def mentions(text: str) -> list[str]:
    """The object kinds a caption names, in order, one per mention ('boxes' -> 'box')."""
    return [m.group(1).lower() for m in _MENTION.finditer(text)]


def hallucinations(scene: MiniScene, text: str) -> int:
    """How many object mentions of `text` name a kind the scene does not show."""
    shown = set(scene.kinds)
    return sum(1 for kind in mentions(text) if kind not in shown)


def pair_agreement(pairs: Iterable[Mapping[str, Any]], scenes: Mapping[str, MiniScene]) -> dict[str, Any]:
    """Counts over pairs: chosen with fewer / more / as many hallucinated mentions as rejected.

    `agreement` is better / (better + worse): the share of pairs with a difference that the pair orders
    right (0.5 is chance). Pairs whose image is not in `scenes` are counted as `unknown`.
    """
    better = worse = same = unknown = 0
    for pair in pairs:
        scene = scenes.get(os.path.abspath(str(pair["image"])))
        if scene is None:
            unknown += 1
            continue
        diff = hallucinations(scene, str(pair["rejected"])) - hallucinations(scene, str(pair["chosen"]))
        if diff > 0:
            better += 1
        elif diff < 0:
            worse += 1
        else:
            same += 1
    decided = better + worse
    return {
        "pairs": better + worse + same + unknown,
        "chosen_fewer": better,
        "chosen_more": worse,
        "same": same,
        "unknown": unknown,
        "agreement": round(better / decided, 4) if decided else None,
    }


def caption_stats(texts: Iterable[tuple[MiniScene, str]]) -> dict[str, float]:
    """Direct counts over (scene, caption): CHAIR-like share of hallucinated mentions (x100), mean words."""
    n = mentioned = hallucinated = words = 0
    for scene, text in texts:
        n += 1
        mentioned += len(mentions(text))
        hallucinated += hallucinations(scene, text)
        words += len(text.split())
    return {
        "captions": n,
        "chair": round(100 * hallucinated / mentioned, 2) if mentioned else 0.0,
        "mean_words": round(words / n, 3) if n else 0.0,
    }


def scene_counts(scenes: Iterable[MiniScene], texts: Iterable[str]) -> list[tuple[int, int]]:
    """Per caption: (hallucinated mentions, mentions): what CHAIR sums, kept apart for resampling."""
    pairs = zip(scenes, texts, strict=True)
    return [(hallucinations(scene, text), len(mentions(text))) for scene, text in pairs]


def chair_change_interval(
    base: list[tuple[int, int]], arm: list[tuple[int, int]], resamples: int = 2000, level: float = 0.95
) -> tuple[float, float] | None:
    """Paired bootstrap over the scenes (the same resampled scenes for both models) of the relative CHAIR
    change arm / base - 1: the interval an evaluation on this many scenes can resolve. None when the counts
    are missing or differ in length, or the base has no hallucination to compare with."""
    import numpy as np

    if not base or not arm or len(base) != len(arm):
        return None
    b, a = np.asarray(base, dtype=float), np.asarray(arm, dtype=float)
    if b[:, 0].sum() == 0:
        return None
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(b), size=(resamples, len(b)))
    hb, mb, ha, ma = (x[idx].sum(axis=1) for x in (b[:, 0], b[:, 1], a[:, 0], a[:, 1]))
    ok = (hb > 0) & (mb > 0) & (ma > 0)
    change = (ha[ok] / ma[ok]) / (hb[ok] / mb[ok]) - 1
    tail = 100 * (1 - level) / 2
    return round(float(np.percentile(change, tail)), 4), round(float(np.percentile(change, 100 - tail)), 4)
