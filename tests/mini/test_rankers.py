"""repro-mini's ranking options and its Sec. 3.1 probe: the summaries, computed by hand (no model)."""

from __future__ import annotations

import pytest

from clipdpo_mini.repro import (
    RANKER_OPTIONS,
    format_probe,
    format_rankers,
    option_names,
    summarise_probe,
    summarise_rankers,
)


def counts(fewer: int, more: int, same: int) -> dict:
    return {"pairs": fewer + more + same, "chosen_fewer": fewer, "chosen_more": more, "same": same,
            "unknown": 0, "agreement": round(fewer / (fewer + more), 4)}  # fmt: skip


def test_option_names_and_the_options_commands():
    assert option_names("fused,,clause-min") == ("fused", "clause-min") and option_names("") == ()
    with pytest.raises(ValueError, match="unknown ranker option fuzed"):
        option_names("fuzed")
    fused = RANKER_OPTIONS["fused"]
    assert fused.lvlm and fused.pair_args == ("--fuse-field", "lvlm_logp", "--min-margin", "0",
                                              "--fuse-alpha", "0.9")  # fmt: skip
    assert RANKER_OPTIONS["lvlm"].pair_args[-2:] == ("--fuse-alpha", "0")  # the likelihood alone
    assert RANKER_OPTIONS["clause-min"].score_args == ("--per-sentence", "min", "--parts", "clause")


def test_summarise_rankers_over_seeds():
    seeds = [
        {"rankers": {"clip": counts(9, 1, 5), "fused": counts(6, 2, 0)}},
        {"rankers": {"clip": counts(7, 3, 0), "fused": counts(4, 4, 2)}},
    ]
    out = summarise_rankers(seeds)
    assert list(out) == ["clip", "fused"]
    assert out["clip"]["stats"]["agreement"] == {"mean": 0.8, "sd": pytest.approx(0.1414, abs=1e-4),
                                                 "values": [0.9, 0.7]}  # fmt: skip
    assert out["fused"]["stats"]["agreement"]["values"] == [0.75, 0.5]
    assert out["clip"]["stats"]["pairs"]["mean"] == 12.5 and out["fused"]["stats"]["same"]["values"] == [0, 2]
    text = format_rankers(out)
    assert "\nclip             0.800 ±0.141     12      8      2      2\n" in text
    assert text.endswith("\nfused            0.625 ±0.177      9      5      3      1")


def fig2(prefers: int, corrects: int, variants: int = 10, original_higher: int = 7) -> dict:
    scorer = {"ranks_variant_higher": variants - original_higher, "ranks_original_higher": original_higher,
              "ties": 0, "corrects_lvlm": corrects,
              "corrects_lvlm_pct": round(100 * corrects / prefers, 2) if prefers else None}  # fmt: skip
    row = {"variants": variants, "lvlm_prefers": prefers,
           "lvlm": {"ranks_variant_higher": prefers, "ranks_original_higher": variants - prefers, "ties": 0},
           "scorers": {"ranker": scorer, "random_ranker": {**scorer, "corrects_lvlm_pct": None}}}  # fmt: skip
    return row


def test_summarise_probe_over_seeds():
    seeds = [
        {"probe": {"types": {"existence": fig2(4, 3), "attribute": fig2(0, 0)}, "all": fig2(4, 3, 20, 14)}},
        {"probe": {"types": {"existence": fig2(2, 2, original_higher=10)}, "all": fig2(2, 2)}},
        {"probe": None},  # a seed without the probe (n_probe 0) is left out
    ]
    out = summarise_probe(seeds)
    assert list(out) == ["existence", "attribute", "all"]
    ex = out["existence"]
    assert ex["variants"] == [10, 10] and ex["lvlm_prefers"] == [4, 2]
    assert ex["ranker"]["corrects_lvlm_pct"] == [75.0, 100.0]
    assert ex["ranker"]["original_higher_pct"] == [70.0, 100.0]
    assert ex["lvlm_original_higher_pct"] == [60.0, 80.0]
    assert out["attribute"]["lvlm_prefers"] == [0]
    assert out["attribute"]["ranker"]["corrects_lvlm_pct"] == [None]
    assert out["all"]["variants"] == [20, 10] and out["all"]["ranker"]["original_higher_pct"] == [70.0, 70.0]
    text = format_probe(out)
    assert "existence" in text and "75, 100" in text and "60, 80 / 70, 100 / 70, 100" in text
    assert summarise_probe([{"probe": None}]) == {}


def test_world_variants_hallucinate_one_fact_in_the_worlds_phrasing():
    from clipdpo_mini.repro import world_variants
    from clipdpo_mini.truth import hallucinations
    from clipdpo_mini.world import COLOURS, MiniScene, sample_scene, true_caption

    scenes = [sample_scene(i, 0) for i in range(300_000, 300_060)]
    rows = [{"id": n, "image": f"/x/{n}.png", "scene": sc.to_json(), "caption": true_caption(sc)}
            for n, sc in enumerate(scenes)]  # fmt: skip
    variants = world_variants(rows, seed=0)
    assert world_variants(rows, seed=0) == variants  # the same on every run
    by_kind: dict[str, list] = {}
    for v in variants:
        by_kind.setdefault(v["hallucination"], []).append(v)
        scene = MiniScene.from_json(rows[int(v["from"].removeprefix("probe-"))]["scene"])
        assert v["original"] == true_caption(scene) and v["id"] == f"{v['from']}-{v['hallucination']}"
        words, true_words = v["text"].split(), true_caption(scene).split()
        if v["hallucination"] == "world-attribute":  # one colour word changed to another of the world's
            changed = [(a, b) for a, b in zip(words, true_words, strict=True) if a != b]
            assert len(changed) == 1 and changed[0][0].strip(",.") in COLOURS
            assert hallucinations(scene, v["text"]) == 0
        else:  # one absent object added, as the last item
            assert hallucinations(scene, v["text"]) == 1 and v["text"].endswith(".")
        if v["hallucination"] == "planted-box":
            assert scene.triggers_bias and v["text"].split()[-1] == "box."
        if v["hallucination"] == "world-existence":
            assert v["text"].split()[-1] != "box."  # not the planted prior
    n_bias = sum(sc.triggers_bias for sc in scenes)
    assert (len(by_kind["world-existence"]), len(by_kind["world-attribute"])) == (60, 60)
    assert len(by_kind["planted-box"]) == n_bias > 0
