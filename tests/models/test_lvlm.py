"""The LVLM loader and wrapper on the tiny LLaVA: same classes and code path as a real LLaVA-1.5."""

from __future__ import annotations

import pytest
import torch

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.models.lvlm import load_lvlm


def test_tiny_llava_loads_through_auto_classes(tiny_llava_dir: str) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_llava_dir)
    processor = AutoProcessor.from_pretrained(tiny_llava_dir)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert type(model.model.vision_tower).__name__ == "CLIPVisionModel"
    assert type(processor).__name__ == "LlavaProcessor"
    assert processor.num_additional_image_tokens == 1
    assert processor.patch_size == model.config.vision_config.patch_size == 8
    assert processor.image_processor.crop_size == {"height": 32, "width": 32}
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == model.config.image_token_index
    assert processor.chat_template


def test_image_expands_to_the_tokens_the_model_expects(tiny_lvlm, color_images) -> None:
    batch = tiny_lvlm.inputs(color_images[:1], ["Describe it."])
    n_image = int((batch["input_ids"] == tiny_lvlm.model.config.image_token_index).sum())
    assert n_image == (32 // 8) ** 2  # the CLS feature is dropped ("default" strategy)
    text = tiny_lvlm.processor.apply_chat_template(
        [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe it."}]}]],
        add_generation_prompt=True,
    )
    assert text == ["USER: <image>\nDescribe it. ASSISTANT:"]


def test_batches_are_left_padded(tiny_lvlm, color_images) -> None:
    batch = tiny_lvlm.inputs(color_images[:2], ["Hi", "A much longer prompt than the first one."])
    mask = batch["attention_mask"]
    assert mask[0, 0] == 0 and mask[0, -1] == 1 and mask[1].all()


def test_greedy_generation_is_deterministic_and_batch_independent(tiny_lvlm, color_images) -> None:
    prompts = ["Describe it.", "What is this?", "Describe the image in detail.", "Hi"]
    batched = tiny_lvlm.generate(color_images, prompts, max_new_tokens=6, temperature=0)
    single = [
        tiny_lvlm.generate([im], [p], max_new_tokens=6, temperature=0)[0]
        for im, p in zip(color_images, prompts, strict=True)
    ]
    assert len(batched) == 4 and all(isinstance(t, str) and t for t in batched)
    assert batched == single


def test_seeded_sampling_depends_on_the_row_seed_not_the_batch(tiny_lvlm, color_images) -> None:
    prompts = ["Describe it."] * 4
    seeds = [11, 12, 13, 14]
    opts = {"max_new_tokens": 8, "temperature": 1.0}
    batched = tiny_lvlm.generate(color_images, prompts, seed=seeds, **opts)
    pairs = tiny_lvlm.generate(color_images[2:], prompts[2:], seed=seeds[2:], **opts)
    assert batched[2:] == pairs
    again = tiny_lvlm.generate(color_images, prompts, seed=seeds, **opts)
    assert again == batched
    other = tiny_lvlm.generate(color_images, prompts, seed=[21, 22, 23, 24], **opts)
    assert other != batched


def test_next_token_probs_match_a_direct_forward_pass(tiny_lvlm, color_images) -> None:
    prompts = ["Is it red?", "Is it green? Answer yes or no."]
    probs = tiny_lvlm.next_token_probs(color_images[:2], prompts)
    tok = tiny_lvlm.tokenizer
    for i, (image, prompt) in enumerate(zip(color_images[:2], prompts, strict=True)):
        batch = tiny_lvlm.inputs([image], [prompt])
        with torch.no_grad():
            ref = torch.softmax(tiny_lvlm.model(**batch).logits[0, -1].float(), -1)
        for word in ("Yes", "No"):
            ids = {tok.encode(word, add_special_tokens=False)[0]}
            spaced = tok.encode(" " + word, add_special_tokens=False)
            if len(spaced) == 1:
                ids.add(spaced[0])
            assert probs[i][word] == pytest.approx(float(ref[list(ids)].sum()), rel=1e-4)
        assert 0 < probs[i]["Yes"] < 1


def test_missing_local_directory_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(InputError, match="model directory not found"):
        load_lvlm(str(tmp_path / "nope" / "model"))


def test_model_without_chat_template_is_one_clear_error(tiny_llava_dir, tmp_path) -> None:
    import shutil

    copy = tmp_path / "no-template"
    shutil.copytree(tiny_llava_dir, copy)
    (copy / "chat_template.jinja").unlink()
    with pytest.raises(InputError, match="has no chat template"):
        load_lvlm(str(copy))
    lvlm = load_lvlm(str(copy), chat_template="{{ messages[0]['content'][1]['text'] }}<image>")
    from PIL import Image

    assert lvlm.generate([Image.new("RGB", (32, 32))], ["x"], max_new_tokens=2, temperature=0)


@pytest.mark.parametrize(
    ("family", "image_tokens"),
    [
        # sides rounded to multiples of 16 (patch 8 x merge 2), one token per 16x16: 2x2, 3x4, 1x4
        ("qwen2_vl", [4, 12, 4]),
        # one 32 px tile (4 tokens) for a small image; else 2x2 or 2x1 tiles plus the global view
        ("idefics3", [20, 20, 12]),
    ],
)
def test_other_lvlm_families_batch_like_single_rows(family: str, image_tokens: list[int], tmp_path) -> None:
    """Qwen2-VL and Idefics3 (SmolVLM): images of different sizes take different numbers of tokens."""
    from PIL import Image

    from tests import generation_helpers

    build = getattr(generation_helpers, f"build_tiny_{family}")
    lvlm = load_lvlm(build(str(tmp_path / family)), device="cpu")
    images = [Image.new("RGB", size, "red") for size in ((32, 32), (64, 48), (20, 64))]
    prompts = ["a", "describe", "what"]
    batch = lvlm.inputs(images, prompts)
    image_id = lvlm.model.config.image_token_id
    assert (batch["input_ids"] == image_id).sum(-1).tolist() == image_tokens
    assert batch["attention_mask"][:, -1].all() and not batch["attention_mask"][:, 0].all()  # left padding
    batched = lvlm.generate(images, prompts, max_new_tokens=5, seed=[1, 2, 3])
    rows = zip(images, prompts, [1, 2, 3], strict=True)
    single = [lvlm.generate([i], [p], max_new_tokens=5, seed=[s])[0] for i, p, s in rows]
    assert batched == single


def test_a_missing_optional_package_is_one_line() -> None:
    from clipdpo_cli.models.hub import load_pretrained

    def loader(name, **kwargs):
        raise ImportError("Package `num2words` is required to run SmolVLM processor.\nInstall it with pip.")

    with pytest.raises(InputError) as info:
        load_pretrained(loader, "HuggingFaceTB/SmolVLM2-2.2B-Instruct", "model")
    assert str(info.value) == (
        "cannot load model 'HuggingFaceTB/SmolVLM2-2.2B-Instruct': "
        "Package `num2words` is required to run SmolVLM processor."
    )
