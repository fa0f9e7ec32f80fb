"""score, categorize and models as a user runs them: real processes, the tiny model, offline."""

from __future__ import annotations

import json
import os

import orjson
import pytest

from tests.conftest import run_cli, run_in_process

OFFLINE = {"HF_HUB_OFFLINE": "1"}


def lines(stdout: bytes) -> list[dict]:
    return [orjson.loads(line) for line in stdout.splitlines()]


@pytest.fixture
def cli_in_process():
    """`clipdpo ARGS` through the real entry point, in this process (a subprocess pays ~10 s of imports)."""
    return lambda args, input=b"": run_in_process(*args, stdin=input, text=False)


def test_score_then_categorize_through_a_file(tiny_clip_name, image_dir, tmp_path, cli_in_process):
    records = [
        {"id": f"{i}-{j}", "image": f"img{i}.png", "kind": "caption", "text": f"a caption {j}", "mine": [i]}
        for i in range(3)
        for j in range(2)
    ]
    records.insert(2, {"id": "bad", "image": "bad.png", "text": "x"})
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    scored = tmp_path / "scored.jsonl"
    args = ["--model", tiny_clip_name, "--image-root", image_dir, "--workers", "1"]
    r = run_cli(["score", *args, "--on-error", "skip", "-o", str(scored)], input=data, **OFFLINE)
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode().startswith("clipdpo score: 7 in, 6 out; skipped bad 1 corrupt image;")
    out = lines(scored.read_bytes())
    assert [o["id"] for o in out] == [rec["id"] for rec in records if rec["id"] != "bad"]
    assert all(o["scorer"] == tiny_clip_name and isinstance(o["clip_score"], float) for o in out)
    assert all(o["scorer_precision"] == "fp32" for o in out)  # --precision auto on a CPU
    assert out[0]["mine"] == [0]
    r = cli_in_process(["score", *args, "--precision", "bf16", "--on-error", "skip", "-q"], input=data)
    in_bf16 = lines(r.stdout)
    assert [o["scorer_precision"] for o in in_bf16] == ["bf16"] * 6
    assert [o["clip_score"] for o in in_bf16] == pytest.approx([o["clip_score"] for o in out], abs=0.5)
    r = cli_in_process(["categorize", str(scored), *args, "-q"])
    assert r.returncode == 0 and r.stderr == b""
    cats = lines(r.stdout)
    assert [c["clip_score"] for c in cats] == [o["clip_score"] for o in out]
    assert all(c["category"] in ("text", "people", "objects", "scenes") for c in cats)
    assert cats[0]["category"] == cats[1]["category"]  # same image, same category
    # --resume: nothing left to do
    r = cli_in_process(["score", *args, "--on-error", "skip", "-o", str(scored), "--resume"], input=data)
    assert r.returncode == 0 and "6 already done (resume)" in r.stderr.decode()
    assert len(lines(scored.read_bytes())) == 6


def test_categorize_an_image_folder(tiny_clip_name, image_dir, cli_in_process):
    args = [
        "categorize",
        image_dir,
        "-m",
        tiny_clip_name,
        "--on-error",
        "skip",
        "--all-sims",
        "--workers",
        "0",
    ]
    r = cli_in_process(args)
    assert r.returncode == 0, r.stderr
    out = lines(r.stdout)
    assert [os.path.basename(o["image"]) for o in out] == [f"img{i}.png" for i in range(5)]
    assert all(set(o["category_sims"]) == {"text", "people", "objects", "scenes"} for o in out)
    assert "skipped bad 1 corrupt image" in r.stderr.decode()


def test_missing_model_offline_is_one_line(tmp_path):
    r = run_cli(["score", "--model", "dfn-h14"], input=b'{"image":"a.png","text":"x"}\n',
                HF_HUB_CACHE=str(tmp_path), **OFFLINE)  # fmt: skip
    err = r.stderr.decode()
    assert r.returncode == 1 and err.count("\n") == 1, err
    assert err.startswith("clipdpo score: error: CLIP model 'dfn-h14' weights are not on this machine")
    assert f"looked in the Hugging Face cache {tmp_path}" in err


def test_usage_errors(tiny_clip_name, image_dir, cli_in_process):
    r = cli_in_process(["score", "--model", "dfn-h41"])
    assert r.returncode == 2 and "did you mean dfn-h14" in r.stderr.decode()
    r = cli_in_process(["score", "-m", tiny_clip_name, "--template", "no fields"])
    assert r.returncode == 2 and "uses no field" in r.stderr.decode()
    rec = {"id": "a", "image": os.path.join(image_dir, "img0.png"), "text": "x", "clip_score": 3.0}
    r = cli_in_process(
        ["score", "-m", tiny_clip_name, "--workers", "0"], input=json.dumps(rec).encode() + b"\n"
    )
    assert r.returncode == 2 and "already has 'clip_score'" in r.stderr.decode()
    r = cli_in_process(["score", "--scorer", "lvlm", "-m", "some/lvlm", "--per-sentence", "min"])
    assert r.returncode == 2 and "--per-sentence needs a CLIP scorer" in r.stderr.decode()


def test_models_registry(tmp_path, cli_in_process):
    r = cli_in_process(["models", "--json", "--cache-dir", str(tmp_path)])
    assert r.returncode == 0
    rows = lines(r.stdout)
    dfn = next(row for row in rows if row["alias"] == "dfn-h14")
    assert dfn == {
        "alias": "dfn-h14", "arch": "ViT-H-14-quickgelu", "pretrained": "dfn5b",
        "hf_repo": "apple/DFN5B-CLIP-ViT-H-14", "quick_gelu": True, "cached": False, "default": True,
        "note": "paper default scorer: ViT-H/14 DFN-5B, 224 px",
    }  # fmt: skip
    table = cli_in_process(["score", "--list-models"]).stdout.decode()
    assert "dfn-h14 *" in table and "ViT-SO400M-14-SigLIP-384" in table


def test_categorize_refuses_to_overwrite_a_category_as_score_does(tiny_clip_name, image_dir, tmp_path,
                                                                  cli_in_process):  # fmt: skip
    """One rule for both: an existing field is an error unless --overwrite (categorize used to replace it)."""
    data = orjson.dumps({"id": "a", "image": "img0.png", "text": "x", "category": "mine"}) + b"\n"
    args = ["--model", tiny_clip_name, "--image-root", image_dir, "--workers", "0"]
    r = cli_in_process(["categorize", *args], input=data)
    assert r.returncode == 2
    assert r.stderr.decode().strip() == (
        "clipdpo categorize: error: record a already has 'category': pass --overwrite to replace it"
    )
    r = cli_in_process(["categorize", *args, "--overwrite", "-q"], input=data)
    assert r.returncode == 0 and lines(r.stdout)[0]["category"] in ("text", "people", "objects", "scenes")
    r = cli_in_process(["score", *args, "--categorize"], input=data)
    assert r.returncode == 2 and b"already has 'category'" in r.stderr


def test_output_into_a_missing_folder_fails_before_the_model_loads(tmp_path, cli_in_process):
    """-o into a folder that does not exist: said at once (before: only after minutes of model loading)."""
    data = orjson.dumps({"id": "a", "image": "img0.png", "text": "x"}) + b"\n"
    out = tmp_path / "no-such-dir" / "scored.jsonl"
    r = cli_in_process(["score", "--model", "dfn-h14", "-o", str(out)], input=data)
    assert r.returncode == 1  # dfn-h14 is not cached here: loading it first would give that error instead
    assert r.stderr.decode().strip() == (
        f"clipdpo score: error: -o {out}: folder {out.parent} does not exist"
    )
