"""pair --source injected / noised: POVID's two sources of dispreferred answers, by hand."""

from __future__ import annotations

import pytest

from clipdpo_cli.io.errors import RecordFailure
from clipdpo_cli.io.records import make_id
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.stages.pair import PairSettings, pair_records
from clipdpo_cli.stages.perturb import PerturbSettings, perturb_records


def run(records, **rules):
    ctx = StageContext("pair")
    return list(pair_records(iter(records), PairSettings(**rules), ctx)), ctx


def test_injected_pairs_each_variant_against_its_trusted_original() -> None:
    trusted = [{"id": "c1", "image": "1.png", "prompt": "Describe.", "text": "A red car next to two trees."}]
    perturbed = list(perturb_records(trusted, PerturbSettings(seed=0)))
    assert [r["hallucination"] for r in perturbed] == ["none", "existence", "attribute", "relation"]
    out, ctx = run(perturbed, source="injected")
    assert [p["hallucination"] for p in out] == ["existence", "attribute", "relation"]
    for pair, variant in zip(out, perturbed[1:], strict=True):
        assert pair["chosen"] == "A red car next to two trees." and pair["rejected"] == variant["text"]
        assert pair["id"] == make_id("pair", "c1", variant["id"]) and pair["from"] == ["c1", variant["id"]]
        assert pair["kind"] == "injected" and pair["prompt"] == "Describe." and pair["image"] == "1.png"
        assert pair["method"] == "rules" and pair["margin"] is None
    assert ctx.stats.dropped == {"original (the chosen side of its variants' pairs)": 1}
    twice, ctx = run(perturbed + perturbed, source="injected")  # `cat a a`: each pair once
    assert twice == out and ctx.stats.dropped["duplicate id"] == 3
    fixed, _ = run(perturbed, source="injected", prompt="Caption it.")
    assert {p["prompt"] for p in fixed} == {"Caption it."}


def test_injected_needs_perturbs_fields() -> None:
    record = {"id": "x", "image": "1.png", "text": "a cat."}
    with pytest.raises(RecordFailure, match="missing field 'hallucination'.*perturb"):
        run([record], source="injected")
    ctx = StageContext("pair", on_error="skip")
    variant = {**record, "hallucination": "existence"}  # no `original`
    assert list(pair_records([record, variant], PairSettings(source="injected"), ctx)) == []
    assert ctx.stats.skipped == {"missing field 'hallucination'": 1, "missing field 'original'": 1}


def cap(cid, text, prompt="Describe.", sample=0, image="i.png", steps=None, **extra):
    record = {"id": cid, "image": image, "kind": "caption", "text": text, "prompt": prompt, "sample": sample,
              **extra}  # fmt: skip
    if steps is not None:
        record["image_noise"] = {"steps": steps, "schedule": "sigmoid", "seed": 1}
    return record


def test_noised_pairs_match_prompt_and_sample_clean_chosen() -> None:
    records = [
        cap("c0", "a red ball."), cap("c1", "a red ball and a box.", sample=1),
        cap("q0", "a red ball.", prompt="What?"),
        cap("n0", "a red ball and a blue box.", steps=500, clip_score=20.5),
        cap("n1", "a red ball and a box.", sample=1, steps=500),          # same text as its clean caption
        cap("m0", "a ball ball ball ball ball ball ball ball.", prompt="What?", steps=500),  # length
        cap("z0", "a kite.", prompt="Other?", steps=500),                 # no clean partner
        cap("e0", "  ", steps=500),                                       # empty
    ]  # fmt: skip
    out, ctx = run(records, source="noised", max_length_diff=0.6)
    assert len(out) == 1
    (p,) = out
    assert (p["chosen"], p["rejected"], p["prompt"]) == (
        "a red ball.",
        "a red ball and a blue box.",
        "Describe.",
    )
    assert p["id"] == make_id("pair", "c0", "n0") and p["from"] == ["c0", "n0"] and p["kind"] == "noised"
    assert p["image_noise"] == {"steps": 500, "schedule": "sigmoid", "seed": 1}
    assert p["rejected_score"] == 20.5 and p["chosen_score"] is None
    assert ctx.stats.dropped == {
        "noised caption same as the clean one": 1,
        "lengths differ by more than 0.6": 1,  # 3 vs 9 words: 6 > 0.6 x 9 (3 vs 7 for n0: 4 <= 4.2)
        "no clean caption of its prompt and sample": 1,
        "empty caption": 1,
    }
    loose, _ = run(records, source="noised", max_length_diff=1.0, per_image=5)
    assert sorted(p["from"][1] for p in loose) == ["m0", "n0"]


def test_noised_keeps_per_image_pairs_of_smallest_id_and_counts_the_rest() -> None:
    records = []
    for k in range(4):
        records += [
            cap(f"c{k}", f"clean {k}.", prompt=f"P{k}"),
            cap(f"n{k}", f"noised {k}.", prompt=f"P{k}", steps=500),
        ]
    records.append(cap("lonely", "clean only.", prompt="P9"))
    out, ctx = run(records, source="noised", per_image=2)
    ids = sorted(make_id("pair", f"c{k}", f"n{k}") for k in range(4))
    assert [p["id"] for p in out] == ids[:2]
    assert ctx.stats.dropped == {"over --per-image": 2, "no noised caption of its prompt and sample": 1}
    # clean captions from another file after the noised ones: --input-order any groups them
    clean, noised = records[0::2][:4], records[1::2]
    out2, _ = run(noised + clean, source="noised", per_image=4, input_order="any")
    assert sorted(p["id"] for p in out2) == ids


def test_steps_zero_counts_as_clean_and_qa_records_are_not_captions() -> None:
    qa = {"id": "qa1", "image": "i.png", "kind": "qa", "question": "?", "answer_pos": "y", "answer_neg": "n"}
    records = [cap("c0", "a ring.", steps=0), cap("n0", "a star.", steps=300), qa]
    out, ctx = run(records, source="noised")
    assert [(p["chosen"], p["rejected"]) for p in out] == [("a ring.", "a star.")]
    assert ctx.stats.dropped == {"not a caption (QA records pair under --source ranked)": 1}


def test_ranked_is_the_default_and_an_unknown_source_is_refused() -> None:
    assert PairSettings().source == "ranked"
    with pytest.raises(ValueError, match="source"):
        run([cap("a", "x.")], source="other")
