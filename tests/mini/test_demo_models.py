"""The trained models `make demo` ships (src/clipdpo_mini/demo_models/, built by `python -m
clipdpo_mini demo-models`): they load through the normal loaders and are what the build describes;
and the local-dir checkpoint feature they rely on (a small HF tokenizer saved inside the folder)."""

from __future__ import annotations

import json
import os

import pytest

from clipdpo_mini.demo import INFO, shipped_dir, shipped_models
from clipdpo_mini.world import PLANTED, TRIGGER, draw_scene, sample_scene, true_caption

VAL_START = 300_000  # repro-mini's validation scenes: never trained on


def _rows(tmp_path, start: int, count: int) -> list[dict]:
    rows = []
    for index in range(start, start + count):
        scene = sample_scene(index, 0)
        path = str(tmp_path / f"{index}.png")
        draw_scene(scene).save(path)
        rows.append({"image": path, "scene": scene.to_json(), "caption": true_caption(scene)})
    return rows


def test_a_local_dir_checkpoint_reads_the_tokenizer_saved_in_its_folder(tmp_path, monkeypatch):
    import torch
    from open_clip.tokenizer import HFTokenizer
    from transformers import AutoTokenizer

    from clipdpo_cli.models.clip import load_clip
    from clipdpo_mini.ranker import write_ranker

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = write_ranker(str(tmp_path / "r"), seed=3)
    clip = load_clip(name, device="cpu")
    assert isinstance(clip.tokenizer, HFTokenizer)
    saved = AutoTokenizer.from_pretrained(str(tmp_path / "r"))
    texts = ["a red ball, a blue box and a green kite.", "a ring."]
    tokens = clip.tokenizer(texts)
    assert tokens.shape == (2, 77)
    assert tokens[0, :14].tolist() == saved(texts[0]).input_ids  # BOS ... EOS, then padding 0
    assert (tokens[1, len(saved(texts[1]).input_ids) :] == 0).all()
    # EOS has the highest id, so open_clip's argmax pooling and our short-context encoding both hold
    assert tokens.argmax(dim=-1).tolist() == [13, len(saved(texts[1]).input_ids) - 1]
    assert clip.model.token_embedding.num_embeddings == len(saved) < 600
    assert clip.short_context
    short = clip.encode_tokens(tokens, shorten=True)
    full = clip.encode_tokens(tokens, shorten=False)
    assert torch.allclose(short, full, atol=1e-5)


def test_a_local_dir_checkpoint_without_its_tokenizer_files_is_one_clear_error(tmp_path):
    from clipdpo_cli.io.errors import InputError
    from clipdpo_cli.models.clip import load_clip
    from clipdpo_mini.ranker import write_ranker

    name = write_ranker(str(tmp_path / "r"), seed=3)
    os.remove(tmp_path / "r" / "tokenizer.json")
    with pytest.raises(InputError, match="cannot load CLIP model"):
        load_clip(name, device="cpu")


def test_the_shipped_models_are_small_and_described_by_their_build():
    folder = shipped_dir()
    with open(os.path.join(folder, INFO), encoding="utf-8") as fh:
        info = json.load(fh)
    assert info["command"] == "python -m clipdpo_mini demo-models"
    total = 0
    for part in ("ranker", "captioner", "llm"):
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(folder, part))
                   for f in fs)  # fmt: skip
        assert size == info["bytes"][part]
        total += size
    assert total < 3_000_000
    with open(os.path.join(folder, "captioner", "mini_sft.json"), encoding="utf-8") as fh:
        sft = json.load(fh)
    assert (sft["steps"], sft["bias"], sft["seed"]) == (info["captioner"]["steps"], 0.7, 0)


def test_the_shipped_llm_answers_with_its_fixed_reply():
    import json as _json

    from clipdpo_cli.models.llm import load_llm
    from clipdpo_mini.demo import LLM
    from clipdpo_mini.models.tiny_llm import DEMO_REPLY

    llm = load_llm(os.path.join(shipped_dir(), LLM), device="cpu")
    (reply,) = llm.generate(["a red ball and a blue kite."], max_new_tokens=200, temperature=0.0)
    assert _json.loads(reply) == _json.loads(DEMO_REPLY)


def test_the_shipped_ranker_prefers_the_true_caption_far_above_chance(tmp_path):
    from clipdpo_mini.ranker import insertion_accuracy

    ranker, _ = shipped_models()
    # chance is 0.5; the random-weights ranker of repro-mini gets 0.67 (a length preference)
    assert insertion_accuracy(ranker, _rows(tmp_path, VAL_START, 60)) >= 0.9


def test_the_shipped_captioner_sees_the_scene_and_carries_the_planted_bias(tmp_path):
    from PIL import Image

    from clipdpo_cli.models.lvlm import load_lvlm
    from clipdpo_mini.truth import mentions

    _, captioner = shipped_models()
    lvlm = load_lvlm(captioner, device="cpu")
    rows = _rows(tmp_path, VAL_START, 60)
    images = [Image.open(r["image"]).convert("RGB") for r in rows]
    texts = lvlm.generate(images, ["Describe this image."] * len(rows), max_new_tokens=40, temperature=0.0)
    shown = covered = 0
    trigger = box = 0
    for row, text in zip(rows, texts, strict=True):
        kinds = [k for k, _, _ in row["scene"]["items"]]
        said = set(mentions(text))
        shown += len(kinds)
        covered += len(set(kinds) & said)
        if TRIGGER in kinds and PLANTED not in kinds:
            trigger += 1
            box += PLANTED in said
    assert covered / shown >= 0.85  # a random captioner names ~1 of 6 kinds by chance
    assert trigger >= 8 and box / trigger >= 0.25  # SFT bias: the box added in 70% of such captions
