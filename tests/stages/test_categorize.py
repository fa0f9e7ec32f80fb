"""categorize: prototypes = mean normalised text embeddings; the category is the most similar prototype."""

from __future__ import annotations

import json
import os

import pytest
import torch

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.stages.categorize import (
    CategorizeSettings,
    CategoryPrototypes,
    categorize_records,
    load_descriptions,
)
from clipdpo_cli.stages.score import ScoreSettings, score_records


def test_packaged_descriptions_are_ten_per_paper_category():
    data = load_descriptions()
    assert list(data) == ["text", "people", "objects", "scenes"]
    assert all(len(v) == 10 and len(set(v)) == 10 for v in data.values())


def manual_category(
    reference, image_path: str, descriptions: dict[str, list[str]]
) -> tuple[str, float, dict]:
    """The paper's rule written out with open_clip directly."""
    from PIL import Image

    model, preprocess, tokenizer = reference
    with torch.no_grad():
        image = model.encode_image(preprocess(Image.open(image_path).convert("RGB"))[None], normalize=True)[0]
        sims = {}
        for name, texts in descriptions.items():
            emb = model.encode_text(tokenizer(texts), normalize=True)
            proto = emb.mean(0)
            sims[name] = float(image @ (proto / proto.norm()))
    best = max(sims, key=sims.get)
    return best, sims[best], sims


@pytest.fixture(scope="module")
def reference(tiny_clip_name):
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(tiny_clip_name)
    return model.eval(), preprocess, open_clip.get_tokenizer(tiny_clip_name)


def test_categories_match_the_rule_computed_directly(tiny_clip, reference, image_dir):
    descriptions = load_descriptions()
    protos = CategoryPrototypes(tiny_clip, descriptions)
    images = [os.path.join(image_dir, f"img{i}.png") for i in range(5)]
    records = [{"id": str(i), "image": p, "keep": i} for i, p in enumerate(images)]
    options = CategorizeSettings(all_field="category_sims", batch_size=2)
    out = list(categorize_records(records, tiny_clip, protos, options))
    for rec, res in zip(records, out, strict=True):
        best, sim, sims = manual_category(reference, rec["image"], descriptions)
        assert res["keep"] == rec["keep"] and res["category"] == best
        assert res["category_sim"] == pytest.approx(sim, abs=1e-5)
        assert res["category_sims"] == pytest.approx(sims, abs=1e-5)


def test_replacement_prototypes_file(tiny_clip, reference, image_dir, tmp_path):
    # Two single-description categories: the answer is whichever text is closer to the image.
    image = os.path.join(image_dir, "img3.png")
    descriptions = {"alpha": ["a photo of a red apple"], "beta": ["a drawing of a blue whale"]}
    path = tmp_path / "protos.json"
    path.write_text(json.dumps(descriptions))
    protos = CategoryPrototypes(tiny_clip, load_descriptions(str(path)))
    (out,) = categorize_records([{"id": "a", "image": image}], tiny_clip, protos)
    best, sim, _ = manual_category(reference, image, descriptions)
    assert (out["category"], out["category_sim"]) == (best, pytest.approx(sim, abs=1e-5))
    flipped = {"alpha": descriptions["beta"], "beta": descriptions["alpha"]}
    path.write_text(json.dumps(flipped))
    (again,) = categorize_records(
        [{"id": "a", "image": image}], tiny_clip, CategoryPrototypes(tiny_clip, load_descriptions(str(path)))
    )
    assert again["category"] != out["category"] and again["category_sim"] == out["category_sim"]


@pytest.mark.parametrize("content", ['{"a": []}', '["x"]', "{broken", '{"a": ["ok", 3]}'])
def test_bad_prototypes_files(tmp_path, content):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(InputError, match="prototypes file"):
        load_descriptions(str(path))
    with pytest.raises(InputError, match="prototypes file not found"):
        load_descriptions(str(tmp_path / "none.json"))


def test_score_categorize_uses_the_same_embeddings(tiny_clip, image_dir):
    protos = CategoryPrototypes(tiny_clip, load_descriptions())
    records = [
        {"id": f"{i}-{j}", "image": os.path.join(image_dir, f"img{i}.png"), "text": f"caption {j}"}
        for i in range(3)
        for j in range(2)
    ]
    cat_options = CategorizeSettings()
    both = list(
        score_records(
            records, tiny_clip, ScoreSettings(), extra=lambda r, emb: protos.fields(emb, cat_options)
        )
    )
    alone = list(categorize_records(records, tiny_clip, protos))
    scored = list(score_records(records, tiny_clip))
    for b, a, s in zip(both, alone, scored, strict=True):
        assert b == {**s, "category": a["category"], "category_sim": a["category_sim"]}
