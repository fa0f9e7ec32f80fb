import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.records import make_id
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.stages.pair import PairSettings, lengths_similar, pair_records


def cap(cid, score, text=None, image="i.jpg", prompt="Describe."):
    return {
        "id": cid,
        "image": image,
        "kind": "caption",
        "text": text or f"caption {cid} of four",
        "clip_score": score,
        "prompt": prompt,
    }


def run(records, **rules):
    ctx = StageContext("pair")
    return list(pair_records(iter(records), PairSettings(**rules), ctx)), ctx


def test_best_margin_pair_per_image():
    out, _ = run([cap("a", 30.0), cap("b", 33.5, prompt="P-b"), cap("c", 29.0), cap("d", 31.0)])
    assert len(out) == 1
    p = out[0]
    assert (p["chosen"], p["rejected"]) == ("caption b of four", "caption c of four")
    assert p["margin"] == 4.5 and p["chosen_score"] == 33.5 and p["rejected_score"] == 29.0
    assert p["prompt"] == "P-b" and p["kind"] == "caption" and p["from"] == ["b", "c"]
    assert p["id"] == make_id("pair", "b", "c") and p["image"] == "i.jpg"


def test_margin_must_be_strictly_greater():
    out, ctx = run([cap("a", 32.0), cap("b", 30.0)])
    assert out == [] and dict(ctx.stats.dropped) == {"no pair with margin > 2": 2}
    out, _ = run([cap("a", 32.01), cap("b", 30.0)])
    assert len(out) == 1


def test_equal_scores_never_pair():
    out, _ = run([cap("a", 30.0), cap("b", 30.0), cap("c", 30.0)])
    assert out == []


def test_length_rule():
    assert lengths_similar(8, 6, 0.25) and not lengths_similar(8, 5, 0.25)
    assert lengths_similar(4, 3, 0.25) and not lengths_similar(4, 2, 0.25)
    long = "one two three four five six seven eight"
    out, ctx = run([cap("a", 40.0, long), cap("b", 30.0, "one two three four five")])
    assert out == [] and dict(ctx.stats.dropped) == {"no similar-length pair": 2}
    # the similar-length pair wins even with a smaller margin
    out, _ = run(
        [cap("a", 40.0, long), cap("b", 30.0, "one two three four five"), cap("c", 35.0, "1 2 3 4 5 6 7")]
    )
    assert [(p["from"]) for p in out] == [["a", "c"]]


def test_ties_broken_by_ids_and_per_image():
    records = [cap("z", 35.0), cap("y", 35.0), cap("x", 30.0), cap("w", 30.0)]
    out, _ = run(records, per_image=3)
    assert [p["from"] for p in out] == [["y", "w"], ["y", "x"], ["z", "w"]]


def test_groups_images_and_counts_singletons():
    records = [cap("a", 35.0, image="1"), cap("b", 30.0, image="1"), cap("c", 40.0, image="2")]
    out, ctx = run(records)
    assert [p["image"] for p in out] == ["1"]
    assert dict(ctx.stats.dropped) == {"image with < 2 captions": 1}


def test_empty_captions_never_pair():
    # an empty (or blank) caption cannot be trained on: `train` refuses the pair, so pair drops it
    empty, blank = {**cap("e", 10.0), "text": ""}, {**cap("w", 11.0), "text": "  "}
    out, ctx = run([cap("a", 35.0), empty, cap("b", 30.0), blank])
    assert [(p["chosen"], p["rejected"]) for p in out] == [("caption a of four", "caption b of four")]
    assert dict(ctx.stats.dropped) == {"empty caption": 2}


def qa(qid, score, image="i.jpg"):
    return {
        "id": qid,
        "image": image,
        "kind": "qa",
        "question": "What color is the car?",
        "answer_pos": "red",
        "answer_neg": "blue",
        "text": "The car is red.",
        "clip_score": score,
    }


def test_qa_pairs_threshold():
    out, ctx = run([qa("q1", 29.0), qa("q2", 27.0), cap("a", 35.0), cap("b", 30.0)])
    assert [p["kind"] for p in out] == ["qa", "caption"]
    q = out[0]
    assert (q["prompt"], q["chosen"], q["rejected"], q["chosen_score"]) == (
        "What color is the car?",
        "red",
        "blue",
        29.0,
    )
    assert q["from"] == ["q1"] and q["id"] == make_id("pair", "q1")
    assert dict(ctx.stats.dropped) == {"answer score < 28": 1}


def test_empty_captions_and_answers_never_pair():
    empty = {**cap("e", 20.0), "text": "  "}  # the lowest score: it would be every pair's rejected side
    out, ctx = run([cap("a", 35.0), cap("b", 30.0), empty, {**qa("q1", 29.0), "answer_neg": ""}])
    assert [p["from"] for p in out] == [["a", "b"]]
    assert dict(ctx.stats.dropped) == {"empty caption": 1, "empty answer": 1}


def test_pairs_carry_the_scorer_that_ranked_them():
    """`score` writes `scorer`; the pair keeps it (the model card's "pairs ranked by" row reads it)."""
    scored = [{**cap("a", 35.0), "scorer": "dfn-h14"}, {**cap("b", 30.0), "scorer": "dfn-h14"}]
    out, _ = run([*scored, {**qa("q1", 29.0), "scorer": "dfn-h14"}])
    assert [p.get("scorer") for p in out] == ["dfn-h14", "dfn-h14"]
    out, _ = run([cap("a", 35.0), cap("b", 30.0)])
    assert "scorer" not in out[0]


def test_fixed_prompt():
    out, _ = run([cap("a", 35.0), cap("b", 30.0)], prompt="Describe this image.")
    assert out[0]["prompt"] == "Describe this image."


def test_ungrouped_input_is_detected_and_any_order_works():
    records = [
        cap("a", 35.0, image="1"),
        cap("c", 36.0, image="2"),
        cap("b", 30.0, image="1"),
        cap("d", 30.0, image="2"),
    ]
    with pytest.raises(InputError, match="not grouped by image"):
        run(records)
    out, _ = run(records, input_order="any")
    assert sorted(p["id"] for p in out) == sorted([make_id("pair", "a", "b"), make_id("pair", "c", "d")])


def brute_force(records, rules):
    """Reference: all ordered pairs, filtered and ranked, per image."""
    by_image = {}
    for r in records:
        by_image.setdefault(r["image"], []).append(r)
    expected = set()
    for rs in by_image.values():
        cands = []
        for a, b in itertools.permutations(rs, 2):
            la, lb = len(a["text"].split()), len(b["text"].split())
            m = a["clip_score"] - b["clip_score"]
            if a["text"] == b["text"]:  # the same caption twice is no pair
                continue
            if m > rules.min_margin and abs(la - lb) <= rules.max_length_diff * max(la, lb):
                cands.append((-m, a["id"], b["id"]))
        expected |= {(c[1], c[2]) for c in sorted(cands)[: rules.per_image]}
    return expected


caption_lists = st.lists(
    st.tuples(st.integers(0, 5), st.floats(0, 50, allow_nan=False), st.integers(1, 12)),
    min_size=0,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(caption_lists, st.integers(1, 3), st.sampled_from([0.0, 0.25, 0.5]), st.sampled_from([0.0, 2.0, 5.0]))
def test_properties_match_brute_force(items, k, max_diff, margin):
    records = [
        cap(f"c{i}", round(s, 3), " ".join([f"w{i}"] * n), image=f"img{img}")
        for i, (img, s, n) in enumerate(sorted(items, key=lambda t: t[0]))
    ]
    rules = PairSettings(per_image=k, max_length_diff=max_diff, min_margin=margin)
    out = list(pair_records(iter(records), rules))
    got = {tuple(p["from"]) for p in out}
    assert got == brute_force(records, rules)
    for p in out:
        assert p["margin"] > margin and p["chosen_score"] - p["rejected_score"] > margin
        la, lb = len(p["chosen"].split()), len(p["rejected"].split())
        assert abs(la - lb) <= max_diff * max(la, lb)
    counts = {}
    for p in out:
        counts[p["image"]] = counts.get(p["image"], 0) + 1
    assert all(c <= k for c in counts.values())
    # shuffled input through the disk-spilling path gives the same pairs
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    spilled = list(
        pair_records(
            iter(shuffled),
            PairSettings(per_image=k, max_length_diff=max_diff, min_margin=margin, input_order="any"),
        )
    )
    assert sorted(p["id"] for p in spilled) == sorted(p["id"] for p in out)


def test_groups_by_image_orders_and_bad_records():
    from clipdpo_cli.io.groups import groups_by_image

    records = [
        cap("a", 1, image="1"),
        {"id": "x", "kind": "caption"},
        cap("b", 2, image="1"),
        cap("c", 3, image="2"),
    ]
    ctx = StageContext("pair", on_error="skip")
    grouped = [(image, [r["id"] for r in rs]) for image, rs in groups_by_image(iter(records), ctx)]
    assert grouped == [("1", ["a", "b"]), ("2", ["c"])]
    assert dict(ctx.stats.skipped) == {"missing field 'image'": 1}
    spilled = sorted(
        (image, [r["id"] for r in rs]) for image, rs in groups_by_image(iter(records[::-1]), ctx, "any")
    )
    assert spilled == [("1", ["b", "a"]), ("2", ["c"])]
    with pytest.raises(ValueError, match="input_order"):
        groups_by_image(iter(records), ctx, "sorted")


def test_ranks_by_hand():
    from clipdpo_cli.stages.pair import rank_fuse, ranks

    assert ranks([30.0, 33.5, 29.0, 31.0]) == [0.5, 1.0, 0.25, 0.75]  # best 1, worst 1/n
    assert ranks([5.0, 7.0, 5.0, 1.0]) == [0.625, 1.0, 0.625, 0.25]  # a tie shares (0.75 + 0.5) / 2
    assert ranks([2.0]) == [1.0] and ranks([]) == []
    clip, logp = [30.0, 33.5, 29.0, 31.0], [-1.0, -3.0, -0.5, -2.0]  # logp ranks: 0.75, 0.25, 1, 0.5
    assert rank_fuse(clip, logp, 0.9) == pytest.approx([0.525, 0.925, 0.325, 0.725])
    assert rank_fuse(clip, logp, 0.5) == pytest.approx([0.625] * 4)  # the two orders cancel exactly
    # CSR's form: cost = (1 - alpha) * (i_logp + 1) / n + alpha * (i_clip + 1) / n, lowest best;
    # fused = 1 + 1/n - cost
    csr_cost_a = 0.1 * 2 / 4 + 0.9 * 3 / 4  # caption a: 3rd by CLIP, 2nd by logp
    assert rank_fuse(clip, logp, 0.9)[0] == pytest.approx(1 + 1 / 4 - csr_cost_a)


def test_rank_fused_pairs():
    logps = {"a": -1.0, "b": -3.0, "c": -0.5, "d": -2.0}
    scores = (("a", 30.0), ("b", 33.5), ("c", 29.0), ("d", 31.0))
    records = [{**cap(c, s), "lvlm_logp": logps[c]} for c, s in scores]
    (p,), _ = run(records, fuse_field="lvlm_logp", min_margin=0.0)
    assert (p["from"], p["chosen_score"], p["rejected_score"], p["margin"]) == (["b", "c"], 0.925, 0.325, 0.6)
    (p,), _ = run(records, fuse_field="lvlm_logp", fuse_alpha=0.0, min_margin=0.0)  # the likelihood alone
    assert (p["from"], p["chosen_score"], p["rejected_score"], p["margin"]) == (["c", "b"], 1.0, 0.25, 0.75)
    out, ctx = run(records, fuse_field="lvlm_logp", fuse_alpha=0.5, min_margin=0.0)  # every caption 0.625
    assert out == [] and dict(ctx.stats.dropped) == {"no pair with margin > 0": 4}
    out, _ = run(records, fuse_field="lvlm_logp", min_margin=0.65)  # the margin is in rank units
    assert out == []


def test_rank_fusion_errors():
    from clipdpo_cli.io.errors import UsageError

    records = [{**cap("a", 30.0), "lvlm_logp": -1.0}, cap("b", 20.0), {**cap("c", 10.0), "lvlm_logp": -2.0}]
    ctx = StageContext("pair", on_error="skip")
    rules = PairSettings(fuse_field="lvlm_logp", min_margin=0.0, per_image=3)
    out = list(pair_records(iter(records), rules, ctx))
    assert [p["from"] for p in out] == [["a", "c"]]  # b has no likelihood: a bad record, left out
    assert dict(ctx.stats.skipped) == {"missing field 'lvlm_logp'": 1}
    with pytest.raises(UsageError, match="--min-margin 2 leaves no pair"):
        run(records, fuse_field="lvlm_logp")
    with pytest.raises(UsageError, match="--fuse-alpha must be between 0 and 1"):
        run(records, fuse_field="lvlm_logp", fuse_alpha=1.5, min_margin=0.0)


def test_equal_texts_never_pair_even_when_fusion_tells_them_apart():
    # the same caption sampled under two prompts: one CLIP score, two likelihoods
    records = [
        {**cap("a", 30.0, "a red ball."), "lvlm_logp": -0.5},
        {**cap("b", 30.0, "a red ball.", prompt="other"), "lvlm_logp": -2.0},
    ]
    out, ctx = run(records, fuse_field="lvlm_logp", min_margin=0.0)
    assert out == [] and dict(ctx.stats.dropped) == {"no pair with margin > 0": 2}
    out, _ = run(records, min_margin=-1.0)  # a negative margin does not pair them either
    assert out == []
    records.append({**cap("c", 29.0, "a red box."), "lvlm_logp": -1.0})
    out, _ = run(records, fuse_field="lvlm_logp", min_margin=0.0, per_image=3)
    assert sorted(p["from"] for p in out) == [["a", "c"], ["b", "c"]]
