"""`score --scorer lvlm`: the LVLM's log-likelihood of a text equals one computed by hand on its tokens."""

from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

from tests.conftest import invoke_cli, run_text_cli
from tests.models.families.test_family_encoding import EXPECT, PROMPT, reference_prompt_ids

TEXTS = ["A red ball on a table.", "Two cats on a brown sofa."]


def direct_logprob(model, processor, image, key: str, text: str) -> tuple[float, int]:
    """Sum of log p(token) of the text's tokens (as the model emits them) after transformers' prompt ids."""
    tok = processor.tokenizer
    prompt = reference_prompt_ids(processor, image)
    text_ids = tok.convert_tokens_to_ids(tok.tokenize(EXPECT[key]["lead"] + text))
    ids = torch.tensor([prompt + text_ids])
    pixels = processor.image_processor([image], return_tensors="pt")
    if key == "mobilevlm_v2":  # padded to a square first, by the processor (the official process_images)
        pixels = processor(images=[image], text=[processor.image_token], return_tensors="pt")
        pixels = {"pixel_values": pixels["pixel_values"]}
    extra = {k: v for k, v in pixels.items() if k != "num_patches"}
    if "image_grid_thw" in extra:  # Qwen2-VL: flattened patches, their grid, and which ids are image tokens
        extra = {"pixel_values": extra["pixel_values"], "image_grid_thw": extra["image_grid_thw"],
                 "mm_token_type_ids": (ids == processor.image_token_id).long()}  # fmt: skip
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    start = len(prompt)
    total = sum(float(logp[start + i - 1, t]) for i, t in enumerate(text_ids))
    return total, len(text_ids)


@pytest.mark.parametrize("key", ["llava15", "qwen2_vl", "mobilevlm_v2"])
def test_lvlm_scorer_equals_the_log_probabilities_of_the_same_tokens(family_dir, key, tmp_path):
    from clipdpo_cli.models.lvlm import load_lvlm

    image = Image.new("RGB", (64, 48), (200, 30, 30))
    path = tmp_path / "a.png"
    image.save(path)
    records = tmp_path / "in.jsonl"
    records.write_text("".join(json.dumps({"id": f"r{i}", "image": str(path), "text": t}) + "\n"
                               for i, t in enumerate(TEXTS)))  # fmt: skip
    result = invoke_cli("score", str(records), "--scorer", "lvlm", "-m", family_dir(key), "--device", "cpu",
                        "--prompt", PROMPT, "--batch-size", "2", "-q")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    lvlm = load_lvlm(family_dir(key), device="cpu")
    for record, text in zip(out, TEXTS, strict=True):
        total, count = direct_logprob(lvlm.model, lvlm.processor, image, key, text)
        assert record["lvlm_logp_sum"] == pytest.approx(total, abs=2e-4)
        assert record["lvlm_logp"] == pytest.approx(total / count, abs=2e-5)
        assert record["scorer"] == family_dir(key) and math.isfinite(record["lvlm_logp"])
    assert out[0]["lvlm_logp_sum"] != out[1]["lvlm_logp_sum"]


def test_lvlm_scorer_needs_the_lvlm_and_no_categorize(tmp_path):
    records = tmp_path / "in.jsonl"
    records.write_text(json.dumps({"id": "r", "image": "a.png", "text": "x"}) + "\n")
    result = run_text_cli("score", str(records), "--scorer", "lvlm")
    assert result.returncode == 2 and "--scorer lvlm needs the LVLM: -m MODEL" in result.stderr
    result = run_text_cli("score", str(records), "--scorer", "lvlm", "-m", "x", "--categorize")
    assert result.returncode == 2 and "--categorize needs a CLIP scorer" in result.stderr
