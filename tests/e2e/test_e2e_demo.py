"""The demo pipeline end to end, through real shell pipes, with the records checked at every seam."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import orjson
import pytest

from tests.conftest import REPO, cli_env

pytestmark = pytest.mark.slow


def read(path):
    with open(path, "rb") as fh:
        return [orjson.loads(line) for line in fh]


def summaries(log: str) -> dict[str, list[tuple[int, int]]]:
    """'clipdpo STAGE: N in, M out' lines of the log, per stage, in order."""
    found: dict[str, list[tuple[int, int]]] = {}
    for stage, n_in, n_out in re.findall(r"^clipdpo ([\w-]+): ([\d,]+) in, ([\d,]+) out", log, re.M):
        found.setdefault(stage, []).append((int(n_in.replace(",", "")), int(n_out.replace(",", ""))))
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    env = cli_env(DEMO_OUT=str(out))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    r = subprocess.run(
        ["bash", str(REPO / "examples" / "demo.sh")], capture_output=True, env=env, timeout=900
    )
    log = r.stderr.decode()
    assert r.returncode == 0, log[-3000:]
    return out, log


def test_generation_counts_and_grouping(demo):
    out, log = demo
    images = sorted(os.listdir(out / "images"))
    captions = read(out / "captions.jsonl")
    assert len(captions) == len(images) * 5 * 2  # 5 prompts x 2 samples
    assert len({c["id"] for c in captions}) == len(captions)
    # records of one image are adjacent
    order = [c["image"] for c in captions]
    assert all(order.count(im) == 10 for im in set(order))
    assert all(order[i : i + 10] == [order[i]] * 10 for i in range(0, len(order), 10))
    questions = read(out / "questions.jsonl")
    stats = summaries(log)
    asked_in, asked_out = stats["ask"][0]
    assert asked_in == len(captions) and asked_out == len(questions)
    caption_ids = {c["id"] for c in captions}
    for q in questions:
        assert q["kind"] == "qa" and set(q["from"]) <= caption_ids
        assert q["question"] and q["answer_pos"] and q["answer_neg"]


def test_scoring_keeps_records_and_adds_fields(demo):
    out, _ = demo
    captions = read(out / "captions.jsonl")
    scored = read(out / "scored-captions.jsonl")
    assert [s["id"] for s in scored] == [c["id"] for c in captions]
    for c, s in zip(captions, scored, strict=True):
        assert {k: s[k] for k in c} == c  # pass-through untouched
        assert isinstance(s["clip_score"], float) and -100 <= s["clip_score"] <= 100
        assert s["category"] in {"text", "people", "objects", "scenes"}
    for q in read(out / "scored-questions.jsonl"):
        assert {"clip_score", "question_score", "category"} <= set(q)


def test_filter_and_pair_are_explained_by_the_summaries(demo):
    out, log = demo
    stats = summaries(log)
    n_scored = len(read(out / "scored-captions.jsonl")) + len(read(out / "scored-questions.jsonl"))
    f_in, f_out = stats["filter"][0]
    rejects = read(out / "filter-rejects.jsonl")
    assert f_in == n_scored and f_in == f_out + len(rejects)
    pairs = read(out / "pairs.jsonl")
    p_in, p_out = stats["pair"][0]
    assert p_in == f_out and p_out == len(pairs)
    by_id = {r["id"]: r for r in read(out / "scored-captions.jsonl") + read(out / "scored-questions.jsonl")}
    per_image = {}
    for p in pairs:
        sources = [by_id[i] for i in p["from"]]
        assert all(s["image"] == p["image"] for s in sources)
        if p["kind"] == "caption":
            chosen, rejected = sources
            assert (p["chosen"], p["rejected"]) == (chosen["text"], rejected["text"])
            assert p["margin"] > 0.5 and chosen["clip_score"] - rejected["clip_score"] > 0.5
            la, lb = len(chosen["text"].split()), len(rejected["text"].split())
            assert abs(la - lb) <= 0.25 * max(la, lb)
            per_image[p["image"]] = per_image.get(p["image"], 0) + 1
        else:
            (qa,) = sources
            assert (p["prompt"], p["chosen"], p["rejected"]) == (
                qa["question"],
                qa["answer_pos"],
                qa["answer_neg"],
            )
    assert per_image and all(n == 1 for n in per_image.values())


def test_trained_model_reloads_and_evaluations_report(demo):
    out, _ = demo
    summary = json.loads((out / "train-summary.json").read_text())
    assert summary["steps"] == 4 and summary["pairs"] == len(read(out / "pairs.jsonl"))
    from PIL import Image

    from clipdpo_cli.models.lvlm import load_lvlm

    lvlm = load_lvlm(str(out / "model"), device="cpu")
    image = Image.open(next((out / "images").iterdir())).convert("RGB")
    texts = lvlm.generate([image], ["Describe this image."], max_new_tokens=4, temperature=0.0)
    assert len(texts) == 1 and isinstance(texts[0], str)
    amber = json.loads((out / "amber.json").read_text())
    assert amber["responses"]["scored"] == len(read(out / "amber-responses.jsonl")) == 21
    assert 0 <= amber["generative"]["CHAIR"] <= 100 and 0 <= amber["discriminative"]["F1"] <= 100
    assert amber["AMBER"] == pytest.approx(
        (100 - amber["generative"]["CHAIR"] + amber["discriminative"]["F1"]) / 2, abs=0.06
    )
    (line,) = read(out / "zeroshot.jsonl")[:1]
    assert line["caption"]["n"] == 12 and 0 <= line["caption"]["top1"] <= 100
    assert line["clip"]["n"] == 12
    assert len(read(out / "zeroshot-captions.jsonl")) == 12


def test_demo_ends_with_its_report(demo):
    out, log = demo
    html = (out / "report.html").read_text()
    sections = ("scores-captions", "scores-questions", "pairs", "examples", "training", "amber", "zeroshot")
    assert all(f'<section id="{s}">' in html for s in sections)
    assert not re.search(r'(?:src|href)="(?!data:|#)', html)  # everything embedded
    assert {p.name for p in (out / "figures").iterdir()} >= {"scores-captions.png", "pairs.png", "amber.png"}
    assert f"clipdpo report: wrote {out}/report.html" in log
