"""The transformers scorer backend (`transformers:`): resolution offline, parity with the model's own
logits and with cosine computed by hand, and `clipdpo score` end to end on tiny CLIPModel, SiglipModel and
Siglip2Model (NaFlex: the image processor's patches, mask and spatial shapes travel as one dict)."""

from __future__ import annotations

import os

import orjson
import pytest
import torch

from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.models.clip_registry import ClipSource
from clipdpo_cli.models.hf_scorer import TransformersScorer, TransformersSource
from clipdpo_cli.models.scorer import ImageTextScorer, load_scorer, resolve_scorer
from clipdpo_cli.stages.score import ScoreSettings, score_records
from tests.conftest import invoke_cli

TEXTS = ["a dog on a green lawn", "A red car!", "two cats are sleeping on a brown sofa", ""]
KINDS = ["clip", "siglip", "siglip2"]


@pytest.fixture(scope="module", params=KINDS)
def scorer(request, tiny_hf_scorer_name) -> TransformersScorer:
    loaded = load_scorer(tiny_hf_scorer_name(request.param), device="cpu")
    assert isinstance(loaded, TransformersScorer)
    return loaded


def images(image_dir: str) -> list:
    from PIL import Image

    return [Image.open(os.path.join(image_dir, f"img{i}.png")).convert("RGB") for i in range(4)]


def test_names_choose_their_backend_without_loading(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert isinstance(resolve_scorer("dfn-h14"), ClipSource)  # open_clip names resolve as before
    assert resolve_scorer("hf-hub:apple/DFN5B-CLIP-ViT-H-14").kind == "hf-hub"
    assert resolve_scorer("ViT-B-32:openai").arch == "ViT-B-32"
    hub = resolve_scorer("transformers:google/siglip2-base-patch16-224")
    assert hub == TransformersSource("transformers:google/siglip2-base-patch16-224",
                                     "google/siglip2-base-patch16-224", local=False)  # fmt: skip
    (tmp_path / "config.json").write_text("{}")
    assert resolve_scorer(f"transformers:{tmp_path}") == TransformersSource(
        f"transformers:{tmp_path}", str(tmp_path), local=True
    )
    with pytest.raises(UsageError, match="expected transformers:ORG/NAME"):
        resolve_scorer("transformers:")
    with pytest.raises(UsageError, match="expected transformers:ORG/NAME"):
        resolve_scorer("transformers:siglip")
    with pytest.raises(InputError, match="directory not found"):
        resolve_scorer(f"transformers:{tmp_path}/missing/")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no config.json in .*empty"):
        resolve_scorer(f"transformers:{tmp_path / 'empty'}")


def test_a_hub_model_not_in_the_cache_is_one_line_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError) as info:
        load_scorer("transformers:google/siglip2-base-patch16-224", device="cpu", cache_dir=str(tmp_path))
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(
        "image-text scorer 'transformers:google/siglip2-base-patch16-224' is not in the Hugging Face cache "
        f"{tmp_path} (HF_HUB_OFFLINE set)"
    )
    assert "`hf download google/siglip2-base-patch16-224`" in msg


def test_similarity_is_100_cosine_and_model_logits_are_the_models_own(scorer, image_dir):
    """Parity: by-hand cosine of the model's projected features, and the model's logits_per_image."""
    pil = images(image_dir)
    assert isinstance(scorer, ImageTextScorer)
    image_emb, text_emb = scorer.encode_images(pil), scorer.encode_texts(TEXTS, batch_size=3)
    assert image_emb.shape == (4, scorer.embed_dim) and text_emb.shape == (4, scorer.embed_dim)
    siglip = scorer.model.config.model_type in ("siglip", "siglip2")
    pixels = scorer.processor.image_processor(images=pil, return_tensors="pt")  # its own saved settings
    text = scorer.processor.tokenizer(TEXTS, return_tensors="pt", truncation=True, max_length=scorer.context,
                                      padding="max_length" if siglip else True)  # fmt: skip
    inputs = {**pixels, **text}
    with torch.no_grad():
        out = scorer.model(**inputs)
        img = scorer.model.get_image_features(**pixels).pooler_output
        txt_inputs = {k: inputs[k] for k in ("input_ids", "attention_mask") if k in inputs}
        txt = scorer.model.get_text_features(**txt_inputs).pooler_output
    by_hand = 100 * torch.nn.functional.cosine_similarity(img[:, None], txt[None], dim=-1)
    assert torch.allclose(scorer.similarity(image_emb, text_emb), by_hand, atol=1e-4)
    assert torch.allclose(scorer.model_logits(image_emb, text_emb), out.logits_per_image, atol=1e-5)
    scale = float(scorer.model.logit_scale.detach().exp())
    bias = float(scorer.model.logit_bias.detach()) if siglip else 0.0
    assert torch.allclose(scorer.similarity(image_emb, text_emb) / 100,
                          (out.logits_per_image - bias) / scale, atol=1e-5)  # fmt: skip
    assert by_hand.std() > 1  # the scores differ between pairs
    assert scorer.encode_texts([]).shape == (0, scorer.embed_dim)


def test_siglip_text_is_padded_to_its_context_and_clip_text_to_the_longest(scorer):
    tokens = scorer.tokens(["a dog", "a photo of a dog on a lawn"])
    if scorer.model.config.model_type in ("siglip", "siglip2"):
        assert tokens["input_ids"].shape == (2, 16)
    else:
        assert tokens["input_ids"].shape[1] == int(tokens["attention_mask"].sum(dim=1).max()) < 32


@pytest.mark.parametrize("kind, workers", [("siglip", 0), ("siglip2", 2)])
def test_score_stage_uses_the_backend(tiny_hf_scorer_name, image_dir, kind, workers):
    scorer = load_scorer(tiny_hf_scorer_name(kind), device="cpu")
    records = [{"id": f"{i}-{j}", "image": os.path.join(image_dir, f"img{i}.png"), "text": TEXTS[j]}
               for i in range(4) for j in range(3)]  # fmt: skip
    out = list(score_records(records, scorer, ScoreSettings(batch_size=3, workers=workers)))
    sims = scorer.similarity(scorer.encode_images(images(image_dir)), scorer.encode_texts(TEXTS[:3]))
    assert [o["id"] for o in out] == [r["id"] for r in records]
    for record, scored in zip(records, out, strict=True):
        i, j = map(int, record["id"].split("-"))
        assert scored["scorer"] == scorer.name
        assert scored["clip_score"] == pytest.approx(float(sims[i, j]), abs=1e-4)


def test_bf16_autocast_is_close_to_fp32(tiny_hf_scorer_name, image_dir):
    name = tiny_hf_scorer_name("clip")
    fp32, bf16 = load_scorer(name, "cpu", "fp32"), load_scorer(name, "cpu", "bf16")
    a = fp32.similarity(fp32.encode_images(images(image_dir)), fp32.encode_texts(TEXTS))
    b = bf16.similarity(bf16.encode_images(images(image_dir)), bf16.encode_texts(TEXTS))
    assert not torch.equal(a, b) and torch.allclose(a, b, atol=3.0)


def test_clipdpo_score_and_categorize_run_with_a_transformers_model(tiny_hf_scorer_name, image_dir, tmp_path):
    name = tiny_hf_scorer_name("clip")
    records = [{"id": f"{i}", "image": f"img{i}.png", "text": TEXTS[i]} for i in range(3)]
    (tmp_path / "in.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    out_path = tmp_path / "scored.jsonl"
    result = invoke_cli("score", str(tmp_path / "in.jsonl"), "-m", name, "--image-root", image_dir,
                        "--workers", "0", "--categorize", "-o", str(out_path))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("clipdpo score: 3 in, 3 out;")
    out = [orjson.loads(line) for line in out_path.read_bytes().splitlines()]
    scorer = load_scorer(name, device="cpu")
    pil = [images(image_dir)[i] for i in range(3)]
    sims = scorer.similarity(scorer.encode_images(pil), scorer.encode_texts(TEXTS[:3]))
    assert [o["clip_score"] for o in out] == pytest.approx([float(sims[i, i]) for i in range(3)], abs=1e-4)
    assert all(o["scorer"] == name and o["category"] in {"text", "people", "objects", "scenes"} for o in out)
