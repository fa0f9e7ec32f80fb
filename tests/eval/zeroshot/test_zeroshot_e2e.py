"""End to end through the real CLI on tiny random models (tiny LLaVA + tiny open_clip) and synthetic shapes.

Random models give arbitrary accuracies, so the numbers are checked against a direct recomputation with
the same models (parity), and for range and counts.
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import run_in_process
from tests.conftest import run_text_cli as run_cli

pytestmark = pytest.mark.slow


def recompute_top1(encoder_name, texts_or_images, labels, classnames, templates, images=False):
    """Top-1 (%) computed directly: prototypes = renormalised mean of normalised template embeddings."""
    from clipdpo_cli.models.clip import load_clip

    clip = load_clip(encoder_name, device="cpu")
    protos = []
    for name in classnames:
        emb = clip.encode_texts([t.replace("{c}", name) for t in templates])
        protos.append(torch.nn.functional.normalize(emb.mean(0), dim=-1))
    protos = torch.stack(protos)
    q = clip.encode_images(texts_or_images) if images else clip.encode_texts(texts_or_images)
    pred = (q @ protos.T).argmax(dim=1)
    return 100.0 * (pred == torch.tensor(labels)).float().mean().item()


def test_cli_captions_then_rescore_with_another_encoder(shapes_dir, tiny_models, tmp_path):
    from PIL import Image

    from clipdpo_cli.eval.zeroshot.resources import generic_templates

    caps, out = tmp_path / "caps.jsonl", tmp_path / "zs.jsonl"
    proc = run_cli(
        "eval-zeroshot", str(shapes_dir), "--model", tiny_models["llava"],
        "--text-encoder", tiny_models["clip"], "--captions", str(caps), "--baseline", "clip",
        "--max-new-tokens", "6", "--batch-size", "5", "--device", "cpu", "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (result,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert result["dataset"] == "shapes" and result["n_classes"] == 3
    for method in ("caption", "clip"):
        m = result[method]
        assert m["n"] == 12
        assert 0.0 <= m["top1"] <= m["top5"] <= 100.0 and m["top5"] == 100.0  # 3 classes
        assert 0.0 <= m["mean_per_class_recall"] <= 100.0
    assert "Zero-shot classification, top1 (%)" in proc.stderr and "(caption -> text)" in proc.stderr
    records = [json.loads(line) for line in caps.read_text().splitlines()]
    assert len(records) == 12 and all(
        r["kind"] == "caption" and r["model"] == tiny_models["llava"] for r in records
    )

    # parity with a direct computation on the cached captions and on the images
    templates = generic_templates()
    names = ["blue triangle", "green square", "red circle"]
    texts = [r["text"] for r in records]
    labels = [r["label"] for r in records]
    assert result["caption"]["top1"] == pytest.approx(
        recompute_top1(tiny_models["clip"], texts, labels, names, templates), abs=1e-4
    )
    images = [Image.open(r["image"]).convert("RGB") for r in records]
    assert result["clip"]["top1"] == pytest.approx(
        recompute_top1(tiny_models["clip"], images, labels, names, templates, images=True), abs=1e-4
    )

    # re-score with another text encoder: no --model, no regeneration, the cache is untouched
    before = caps.read_bytes()
    proc = run_cli(
        "eval-zeroshot", str(shapes_dir), "--text-encoder", tiny_models["clip2"], "--captions", str(caps),
        "--device", "cpu", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and caps.read_bytes() == before
    (rescored,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rescored["text_encoder"] == tiny_models["clip2"] and rescored["model"] == tiny_models["llava"]
    assert rescored["caption"]["top1"] == pytest.approx(
        recompute_top1(tiny_models["clip2"], texts, labels, names, templates), abs=1e-4
    )


def test_cli_named_datasets_baseline_only(nine_root, tiny_models, no_clip_benchmark):
    root, _ = nine_root
    proc = run_cli(
        "eval-zeroshot", "--dataset", "eurosat", "--dataset", "Caltech-101", "--data-root", str(root),
        "--text-encoder", tiny_models["clip"], "--baseline", "clip", "--device", "cpu",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["dataset"] for r in results] == ["eurosat", "caltech101", "average"]
    assert [r["clip"]["n"] for r in results] == [20, 101, 121]
    assert [r["n_classes"] for r in results[:2]] == [10, 101]
    assert results[2]["clip"]["top1"] == pytest.approx(
        (results[0]["clip"]["top1"] + results[1]["clip"]["top1"]) / 2
    )
    assert "EuroSAT has no official test split" in proc.stderr
    header = [line for line in proc.stderr.splitlines() if line.startswith("Method")][0]
    assert header.split()[1:] == ["Eurosat", "Caltech-101", "Avg"]


def test_cli_user_errors_are_one_line(nine_root, tmp_path):
    root, _ = nine_root
    proc = run_in_process(
        "eval-zeroshot", "--dataset", "mnist", "--data-root", str(root), "--baseline", "clip"
    )
    assert (
        proc.returncode == 2 and "unknown dataset 'mnist'" in proc.stderr and "Traceback" not in proc.stderr
    )
    proc = run_in_process("eval-zeroshot", "--dataset", "food101", "--baseline", "clip")
    assert proc.returncode == 2 and "--dataset needs --data-root" in proc.stderr
    proc = run_in_process("eval-zeroshot", str(tmp_path / "nowhere.jsonl"), "--baseline", "clip")
    assert proc.returncode == 1 and "not found" in proc.stderr


def test_cli_asks_for_flowers_classnames_without_clip_benchmark(nine_root):
    from clipdpo_cli.eval.zeroshot.resources import CLIP_BENCHMARK_CLASSNAMES, clip_benchmark_file

    if clip_benchmark_file(CLIP_BENCHMARK_CLASSNAMES) is not None:
        pytest.skip("clip-benchmark is installed: Flowers takes its class names from there")
    root, _ = nine_root  # Flowers ships no class names of its own
    proc = run_in_process(
        "eval-zeroshot", "--dataset", "flowers", "--data-root", str(root), "--baseline", "clip"
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--classnames FILE (a text file with 102 lines" in proc.stderr


def test_default_text_encoder_reads_long_captions():
    """The default must be a SigLIP with a long text context (the 224 px SO400M reads only 16 tokens)."""
    import open_clip

    from clipdpo_cli.eval.zeroshot.settings import DEFAULT_TEXT_ENCODER
    from clipdpo_cli.models.clip_registry import resolve_clip

    source = resolve_clip(DEFAULT_TEXT_ENCODER)
    assert "SigLIP" in source.arch
    assert open_clip.get_model_config(source.arch)["text_cfg"]["context_length"] >= 64
    assert open_clip.get_model_config("ViT-SO400M-14-SigLIP")["text_cfg"]["context_length"] == 16
