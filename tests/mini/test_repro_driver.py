"""`make repro-mini`'s own code path, end to end at a tiny size: examples/mini/repro.sh (the script the
Makefile runs) with one seed, a world of a few scenes and a few steps. Its numbers mean nothing; what is
checked is that every command of the driver runs and that each split is scored on its own responses (the
driver once died after 20 minutes because a split's part of the responses was refused as incomplete)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, cli_env

pytestmark = pytest.mark.slow

N_VAL, N_TEST = 4, 6
TINY = [
    "n_ranker=64", "n_sft=256", "n_pool=6", f"n_val={N_VAL}", f"n_test={N_TEST}", "ranker_steps=4",
    "sft_steps=60", "max_new_tokens=8", "min_caption_score=-1000", "min_margin=0", "max_length_diff=1",
    "batch_size=4", "candidates=clip-dpo", "rounds=2", "round_controls=random-ranker",
    "ranker_options=clause-min,lvlm", "train_ranker_options=fused", "sources=povid",
]  # fmt: skip
ARMS = ("clip-dpo", "random-images", "self-preference", "random-ranker", "random-swap-dpo")


@pytest.fixture(scope="module")
def repro(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro") / "mini"
    env = cli_env(MINI_OUT=str(out), PYTHONWARNINGS="ignore::FutureWarning")
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env["PATH"]])
    r = subprocess.run(
        ["bash", str(REPO / "examples" / "mini" / "repro.sh"), "--seeds", "0", "--jobs", "1", "--set", *TINY],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=1200,
    )  # fmt: skip
    return out, r


def failure(r) -> str:
    """The driver's error lines (one per failed command), else its stderr's end."""
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    return "\n".join(errors) or r.stderr[-3000:]


def read_json(path):
    with open(path) as fh:
        return json.load(fh)


def test_repro_sh_runs_every_step_at_a_tiny_size(repro):
    out, r = repro
    assert r.returncode == 0, failure(r)
    table = read_json(out / "table.json")
    assert table["selected"] == {"0": "clip-dpo"}
    assert [c["name"] for c in table["settings"]["candidates"]] == ["clip-dpo"]
    assert (table["settings"]["n_val"], table["settings"]["n_test"]) == (N_VAL, N_TEST)
    assert set(table["test"]) >= {"base", "selected", *ARMS, "round2"}
    assert r.stderr.rstrip().endswith(f"report: {out}/report.html")
    html = (out / "report.html").read_text()
    assert "AMBER" in html and str(out) not in html


def test_each_split_is_scored_on_its_own_responses(repro):
    out, r = repro
    assert r.returncode == 0, failure(r)
    for folder in [out / "seed0" / "base", *(out / "seed0" / arm / "eval" for arm in ARMS)]:
        for split, n in (("val", N_VAL), ("test", N_TEST)):
            counts = read_json(folder / f"amber-{split}.json")["responses"]
            assert (counts["scored"], counts["expected"]) == (n, N_VAL + N_TEST), (folder, split)
            with open(folder / f"responses-{split}.jsonl") as fh:
                assert sum(1 for _ in fh) == n
    for arm in ARMS:
        marker = read_json(out / "seed0" / arm / "model" / ".clipdpo-run.json")
        assert marker["finished"] is True and "model.safetensors" in marker["wrote"]


def read_jsonl(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_controls_train_on_their_own_pairs(repro):
    out, r = repro
    assert r.returncode == 0, failure(r)
    sd = out / "seed0"
    ranked = read_jsonl(sd / "ranker" / "pairs.jsonl")
    captions = read_jsonl(sd / "captions.jsonl")
    samples = {(c["image"], c["prompt"], c["text"]) for c in captions}
    coin = read_jsonl(sd / "controls" / "random-images-pairs.jsonl")
    assert [p["id"] for p in coin] == [p["id"] for p in ranked]  # as many pairs, images drawn from the pool
    assert all((p["image"], p["prompt"], p[side]) in samples for p in coin for side in ("chosen", "rejected"))
    greedy = {(g["image"], g["prompt"]): g["text"] for g in read_jsonl(sd / "greedy.jsonl")}
    assert {g["temperature"] for g in read_jsonl(sd / "greedy.jsonl")} == {0.0}
    own = read_jsonl(sd / "controls" / "self-preference-pairs.jsonl")
    assert [p["chosen"] for p in own] == [greedy[(p["image"], p["prompt"])] for p in ranked]
    assert all(o["rejected"] in (p["chosen"], p["rejected"]) for o, p in zip(own, ranked, strict=True))
    # every control: the recipe's number of updates
    steps = {arm: read_json(sd / arm / "model" / "train_summary.json")["steps"] for arm in ARMS}
    assert steps["clip-dpo"] == steps["self-preference"] == steps["random-images"] == steps["random-swap-dpo"]
    # the DPO-only control: plain DPO at the plain-DPO candidate's rate, whatever the seed selected
    recipe = read_json(sd / "random-swap-dpo" / "recipe.json")
    assert (recipe["loss"], recipe["lr"]) == ("dpo", 1e-5)


def test_round_two_continues_from_the_selected_model(repro):
    out, r = repro
    assert r.returncode == 0, failure(r)
    sd = out / "seed0"
    info = read_json(sd / "rounds" / "round2" / "round.json")
    assert info["model"] == info["reference"] == str(sd / "clip-dpo" / "model")
    assert read_json(sd / "rounds" / "rounds.json")[0]["round"] == 2
    table = read_json(out / "table.json")
    assert table["test"]["round2"]["per_seed"][0]["pairs"] == info["pairs"]
    assert "round2_chair_below_round1" in table["targets"]
    checks = table["targets"]
    assert set(checks["controls_each_seed_within_20pct"]) == set(checks["controls_within_20pct"])


def test_a_control_runs_its_own_rounds(repro):
    """round_controls=random-ranker: round 2 of that control starts from its round-1 model, as its own
    reference, and ranks with the untrained ranker (no score filter), not the method's ranker."""
    out, r = repro
    assert r.returncode == 0, failure(r)
    sd = out / "seed0"
    info = read_json(sd / "random-ranker" / "rounds" / "round2" / "round.json")
    assert info["model"] == info["reference"] == str(sd / "random-ranker" / "model")
    scored = read_jsonl(sd / "random-ranker" / "rounds" / "round2" / "scored.jsonl")
    assert {x["scorer"] for x in scored} == {f"local-dir:{out}/models/ranker-random"}
    assert {x["model"] for x in scored} == {str(sd / "random-ranker" / "model")}
    table = read_json(out / "table.json")
    assert table["test"]["random-ranker-round2"]["per_seed"][0]["pairs"] == info["pairs"]
    assert set(table["targets"]["controls_within_20pct"]) == {
        "random-images",
        "self-preference",
        "random-ranker",
        "random-swap-dpo",
    }


def test_probe_and_ranking_options(repro):
    """The Sec. 3.1 probe on the validation captions (n_probe is cut to the n_val scenes) and the ranking
    options' pairs: what the table reports is what their files hold."""
    out, r = repro
    assert r.returncode == 0, failure(r)
    sd = out / "seed0"
    perturbed = read_jsonl(out / "world" / "probe" / "perturbed.jsonl")
    assert sum(p["hallucination"] == "none" for p in perturbed) == N_VAL
    kinds = {"none", "existence", "attribute", "world-existence", "world-attribute", "planted-box"}
    assert {"none", "world-existence", "world-attribute"} <= {p["hallucination"] for p in perturbed} <= kinds
    scored = read_jsonl(sd / "probe" / "lvlm.jsonl")
    assert all({"lvlm_logp", "ranker", "random_ranker"} <= set(p) for p in scored)
    fig2 = read_json(sd / "probe" / "fig2.json")
    table = read_json(out / "table.json")
    assert table["probe"]["all"]["variants"] == [fig2["all"]["variants"]] == [len(perturbed) - N_VAL]
    assert table["probe"]["existence"]["lvlm_prefers"] == [fig2["types"]["existence"]["lvlm_prefers"]]
    assert "probe (Sec. 3.1, Fig. 2)" in r.stdout and "pair agreement with the truth" in r.stdout
    assert list(table["rankers"]) == ["clip", "clause-min", "lvlm", "fused"]
    for name in ("clause-min", "lvlm", "fused"):
        pairs = read_jsonl(sd / "rankers" / name / "pairs.jsonl")
        assert table["rankers"][name]["stats"]["pairs"]["values"] == [len(pairs)]
        assert read_json(sd / "rankers" / name / "agreement.json")["pairs"] == len(pairs)
    fused = read_jsonl(sd / "rankers" / "fused" / "pairs.jsonl")
    assert fused and all(0 < p["rejected_score"] < p["chosen_score"] <= 1 for p in fused)  # rank units
    assert all("lvlm_logp" in rec for rec in read_jsonl(sd / "rankers" / "fused" / "scored.jsonl"))
    # the trained option is an arm of the table, trained on its own pairs
    assert table["test"]["ranker-fused"]["per_seed"][0]["pairs"] == len(fused)
    assert read_json(sd / "ranker-fused" / "model" / ".clipdpo-run.json")["finished"] is True
    # `rankers` (no training) reuses the folder and reports the same agreement
    env = cli_env(PYTHONWARNINGS="ignore::FutureWarning")
    again = subprocess.run(
        [sys.executable, "-m", "clipdpo_mini", "rankers", str(out), "--seeds", "0", "--jobs", "1",
         "--set", *TINY], capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert read_json(out / "rankers.json")["rankers"] == table["rankers"]
    assert "clipdpo train" not in again.stderr and "clipdpo caption" not in again.stderr
def test_povid_source_arm_trains_on_injected_and_noised_pairs(repro):
    out, r = repro
    assert r.returncode == 0, failure(r)
    sd = out / "seed0"
    noised = read_jsonl(sd / "noised-captions.jsonl")
    assert {c["image_noise"]["steps"] for c in noised} == {500}
    pairs = read_jsonl(sd / "sources" / "povid-pairs.jsonl")
    kinds = [p["kind"] for p in pairs]
    assert kinds == sorted(kinds, key=["injected", "noised"].index) and "injected" in kinds
    truth = {row["image"]: row["caption"] for row in read_jsonl(out / "world" / "pool" / "scenes.jsonl")}
    assert all(p["chosen"] == truth[p["image"]] for p in pairs if p["kind"] == "injected")
    agreement = read_json(sd / "sources" / "agreement.json")
    assert set(agreement) >= {"ranked", "injected", "noised", "povid", "ranked+povid"}
    table = read_json(out / "table.json")
    assert table["test"]["povid"]["per_seed"][0]["pairs"] == len(pairs)
    assert (sd / "povid" / "model" / "config.json").exists()
