"""repro-mini's control arms: the pairs each control trains on, computed by hand (docs/reproducing.md says why
each is fair)."""

from __future__ import annotations

import math
import os
from dataclasses import replace

from clipdpo_mini.repro import CONTROLS, both_orders, random_pairs, self_preference, swap_pairs

PAIRS = [
    {"id": f"p{i}", "image": f"img{i % 2}.png", "prompt": f"prompt {i % 3}", "chosen": f"good {i}",
     "rejected": f"bad {i}"}
    for i in range(40)
]  # fmt: skip
GREEDY = {(f"img{i}.png", f"prompt {j}"): f"greedy {i}{j}" for i in range(2) for j in range(3)}


def test_random_preference_has_every_pair_in_both_orders():
    rows = both_orders(PAIRS)
    assert len(rows) == 2 * len(PAIRS)
    for pair, (kept, swapped) in zip(PAIRS, zip(rows[::2], rows[1::2], strict=True), strict=True):
        assert kept == pair
        assert (swapped["chosen"], swapped["rejected"]) == (pair["rejected"], pair["chosen"])
        assert swapped["id"] == pair["id"] + "-swapped" and swapped["image"] == pair["image"]
    # every caption is a chosen exactly as often as a rejected: the SFT term sees both, the DPO term's
    # preferences cancel
    chosen = sorted(r["chosen"] for r in rows)
    assert chosen == sorted(r["rejected"] for r in rows)
    # -log s(d) - log s(-d) has zero slope at d = 0 (policy = reference) and its minimum there
    loss = lambda d: -math.log(1 / (1 + math.exp(-d))) - math.log(1 / (1 + math.exp(d)))  # noqa: E731
    assert abs(loss(1e-4) - loss(-1e-4)) < 1e-12 and loss(0.5) > loss(0) < loss(-0.5)
    # and its training is half the recipe's epochs: the same number of updates
    assert CONTROLS["random-preference"].epochs_factor == 0.5


def test_self_preference_prefers_the_base_greedy_caption_to_a_coin_picked_one():
    rows = self_preference(PAIRS, GREEDY, seed=3)
    assert [r["chosen"] for r in rows] == [GREEDY[(p["image"], p["prompt"])] for p in PAIRS]
    picked = [r["rejected"] == p["chosen"] for r, p in zip(rows, PAIRS, strict=True)]
    assert all(r["rejected"] in (p["chosen"], p["rejected"]) for r, p in zip(rows, PAIRS, strict=True))
    assert 10 <= sum(picked) <= 30  # a coin, not the ranker: both sides picked
    assert self_preference(PAIRS, GREEDY, seed=3) == rows  # reproducible per seed
    assert self_preference(PAIRS, GREEDY, seed=4) != rows
    # the coin does not look at the order: swapping every pair picks the other side with the same coin
    flipped = [{**p, "chosen": p["rejected"], "rejected": p["chosen"]} for p in PAIRS]
    again = self_preference(flipped, GREEDY, seed=3)
    assert [r["rejected"] == p["rejected"] for r, p in zip(again, PAIRS, strict=True)] == picked


def test_earlier_swap_design_is_kept_for_comparison():
    rows = swap_pairs(PAIRS, seed=0)
    swapped = sum(r["chosen"].startswith("bad") for r in rows)
    assert 10 <= swapped <= 30 and len(rows) == len(PAIRS)
    assert CONTROLS["random-swap"].pairs == "swapped" and CONTROLS["random-swap-dpo"].recipe == "clip-dpo"


def test_random_pairs_are_two_base_samples_of_the_image_under_a_random_prompt_in_coin_order():
    captions = [{"image": f"img{i}.png", "prompt": f"prompt {j}", "text": f"sample {i}{j}{k}"}
                for i in range(2) for j in range(3) for k in range(2)]  # fmt: skip
    rows = random_pairs(PAIRS, captions, seed=1)
    assert len(rows) == len(PAIRS)
    firsts, own_prompt = 0, 0
    for row, pair in zip(rows, PAIRS, strict=True):
        i, j = row["image"][3], row["prompt"][-1]
        assert {row["chosen"], row["rejected"]} == {f"sample {i}{j}0", f"sample {i}{j}1"}
        assert (row["image"], row["id"]) == (pair["image"], pair["id"])
        firsts += row["chosen"].endswith("0")
        own_prompt += row["prompt"] == pair["prompt"]
    assert 10 <= firsts <= 30  # the order is a coin's
    assert own_prompt < 25  # the prompt is drawn, not the pair's (its chosen caption's)
    assert len({r["prompt"] for r in rows}) == 3
    assert random_pairs(PAIRS, captions, seed=1) == rows
    # one sample per prompt: two of the image's captions
    one = [c for c in captions if c["text"].endswith("0")]
    assert all(r["chosen"] != r["rejected"] and r["chosen"][-3] == r["image"][3]
               for r in random_pairs(PAIRS, one, seed=1))  # fmt: skip
    # an empty sample is never paired (train refuses an empty side)
    blank = [{**c, "text": ""} if c["text"] == "sample 001" else c for c in captions]
    assert all(r["chosen"] and r["rejected"] for r in random_pairs(PAIRS, blank, seed=1))


def test_random_images_draws_the_image_from_the_whole_pool_not_the_rankers_pairs():
    # the ranker paired only img0 and img1; the pool has ten images with two samples under each prompt
    captions = [{"image": f"img{i}.png", "prompt": f"prompt {j}", "text": f"sample {i}{j}{k}"}
                for i in range(10) for j in range(3) for k in range(2)]  # fmt: skip
    rows = random_pairs(PAIRS, captions, seed=1, any_image=True)
    assert [r["id"] for r in rows] == [p["id"] for p in PAIRS]
    for row in rows:
        i, j = row["image"][3], row["prompt"][-1]
        assert {row["chosen"], row["rejected"]} == {f"sample {i}{j}0", f"sample {i}{j}1"}
    images = [r["image"] for r in rows]
    assert len(set(images)) >= 8  # 40 draws from 10 images: drawn, not the pairs' two
    assert sum(i in ("img0.png", "img1.png") for i in images) < 20
    assert CONTROLS["random-images"].pairs == "random-images"


def test_the_dpo_only_control_trains_with_the_plain_dpo_candidate_and_the_others_with_the_selected():
    from clipdpo_mini.repro import CANDIDATES, Recipe

    selected = Recipe("clip-dpo+sft", "dpo,sft", 0.1, lr=5e-5, epochs=2.0)
    plain = next(r for r in CANDIDATES if r.name == "clip-dpo")
    assert (plain.loss, plain.beta, plain.lr) == ("dpo", 0.1, 1e-5)
    dpo_only = CONTROLS["random-swap-dpo"].recipe_for(selected)
    assert (dpo_only.name, dpo_only.loss, dpo_only.lr) == ("random-swap-dpo", "dpo", 1e-5)
    assert dpo_only.epochs == 2.0
    both = CONTROLS["random-preference"].recipe_for(selected)
    assert (both.loss, both.lr, both.epochs) == ("dpo,sft", 5e-5, 1.0)


def test_chair_change_interval_by_hand():
    from clipdpo_mini.truth import chair_change_interval

    base = [(1, 2), (0, 2), (0, 3), (1, 1)] * 10  # CHAIR 20 / 80
    # the same captions: every resample's change is exactly 0
    assert chair_change_interval(base, base) == (0.0, 0.0)
    # every hallucination gone: -100% in every resample
    assert chair_change_interval(base, [(0, m) for _, m in base]) == (-1.0, -1.0)
    # hallucinations doubled on the same mentions where there were any: +100% in every resample
    assert chair_change_interval(base, [(2 * h, m) for h, m in base]) == (1.0, 1.0)
    # one scene changed: the interval holds its point change (21 / 80 against 20 / 80 = +5%) and 0, which
    # the resamples that leave that scene out give
    moved = list(base)
    moved[1] = (1, 2)
    lo, hi = chair_change_interval(base, moved)
    assert lo <= 0 <= hi and lo < 0.05 < hi
    # ten times the scenes: the interval about sqrt(10) = 3.2 times narrower
    noisy = [(h + (i % 3 == 0), m) for i, (h, m) in enumerate(base)]
    wide = chair_change_interval(base, noisy)
    narrow = chair_change_interval(base * 10, noisy * 10)
    ratio = (wide[1] - wide[0]) / (narrow[1] - narrow[0])
    assert 2.6 < ratio < 3.8, ratio
    assert chair_change_interval(base, base[:-1]) is None  # not the same scenes
    assert chair_change_interval([(0, 2)], [(1, 2)]) is None  # no base hallucination to compare with


def test_a_rerun_reuses_an_arm_trained_alike_and_sets_aside_one_trained_otherwise(tmp_path, monkeypatch):
    """train_arm once per recipe: the same settings reuse the model; a changed learning rate (e.g. a new
    default of a candidate) moves the old arm, evaluation included, to ARM.was-1 and trains again."""
    from clipdpo_mini import repro

    trained = []

    def fake_clipdpo(*args, stdout=None, stdin=None):
        out = args[args.index("--output-dir") + 1]
        os.makedirs(out, exist_ok=True)
        (tmp_path / out / "config.json").write_text("{}")
        trained.append(args[args.index("--learning-rate") + 1])

    monkeypatch.setattr(repro, "clipdpo", fake_clipdpo)
    s = repro.ReproSettings(str(tmp_path))
    folder = str(tmp_path / "seed0" / "clip-dpo")
    recipe = repro.Recipe("clip-dpo", "dpo", 0.1, lr=5e-6)
    repro.train_arm(s, recipe, "pairs.jsonl", "base", folder, 0)
    os.makedirs(os.path.join(folder, "eval"))
    repro.train_arm(s, recipe, "pairs.jsonl", "base", folder, 0)
    assert trained == ["5e-06"]
    repro.train_arm(s, repro.Recipe("clip-dpo", "dpo", 0.1, lr=1e-5), "pairs.jsonl", "base", folder, 0)
    assert trained == ["5e-06", "1e-05"]
    assert os.path.isdir(folder + ".was-1/eval") and not os.path.exists(os.path.join(folder, "eval"))
    assert repro._read_json(os.path.join(folder, "recipe.json"))["lr"] == 1e-5
    assert repro._read_json(folder + ".was-1/recipe.json")["lr"] == 5e-6
    # other pairs are another training too
    repro.train_arm(s, repro.Recipe("clip-dpo", "dpo", 0.1, lr=1e-5), "other.jsonl", "base", folder, 0)
    assert len(trained) == 3 and os.path.isdir(folder + ".was-2")


def test_rounds_from_another_start_are_set_aside(tmp_path, monkeypatch):
    """Rounds continue one trained model: when that model was retrained (another recipe.json beside it),
    a rerun sets the old rounds and their evaluations aside instead of reusing them."""
    from clipdpo_mini import repro

    monkeypatch.setattr(repro.subprocess, "run", lambda *a, **k: None)  # iterate.sh itself not run here
    s = repro.ReproSettings(str(tmp_path), rounds=2)
    sd, arm = tmp_path / "seed0", tmp_path / "seed0" / "clip-dpo"
    os.makedirs(arm / "model")
    (arm / "recipe.json").write_text('{"lr": 5e-06}')
    world = {"pool": "pool", "prompts": "prompts.txt"}
    args = (s, 0, repro.Recipe("clip-dpo", "dpo", 0.1), str(arm / "model"), world, "ranker", "20", str(sd))
    repro.run_rounds(*args)
    os.makedirs(sd / "round2")
    repro.run_rounds(*args)  # the same start: kept
    assert not (sd / "rounds.was-1").exists() and (sd / "round2").is_dir()
    (arm / "recipe.json").write_text('{"lr": 1e-05}')
    repro.run_rounds(*args)
    assert (sd / "rounds.was-1" / "start.json").is_file() and (sd / "round2.was-1").is_dir()
    assert repro._read_json(str(sd / "rounds" / "start.json"))["trained"] == {"lr": 1e-5}


def test_a_larger_test_split_keeps_the_scenes_and_sets_the_old_folder_aside(tmp_path):
    """--set n_test=N on an existing run: the held-out folder is rewritten at the new size (the old one set
    aside), and AMBER id k is the same scene, so every evaluation only generates for the new ids."""
    from clipdpo_mini import repro
    from clipdpo_mini.world import read_manifest

    small = repro.ReproSettings(str(tmp_path), n_ranker=2, n_sft=2, n_pool=2, n_val=2, n_test=3)
    before = read_manifest(repro.build_world(small)["heldout"])
    repro.build_world(small)  # the same sizes: kept
    assert not (tmp_path / "world" / "heldout.was-1").exists()
    after = read_manifest(repro.build_world(replace(small, n_test=5))["heldout"])
    assert [r["split"] for r in after] == ["val"] * 2 + ["test"] * 5
    assert [(r["id"], r["scene"]) for r in after[:5]] == [(r["id"], r["scene"]) for r in before]
    assert (tmp_path / "world" / "heldout.was-1" / "scenes.jsonl").is_file()
