"""The miniature world's pieces, each against hand-computed values (fast: no training)."""

from __future__ import annotations

import json
import random

import pytest

from clipdpo_mini.repro import select, swap_pairs
from clipdpo_mini.truth import hallucinations, mentions, pair_agreement
from clipdpo_mini.world import (
    Item,
    MiniScene,
    biased_caption,
    caption_of,
    draw_scene,
    read_manifest,
    sample_scene,
    true_caption,
    write_amber_split,
)
from tests.conftest import invoke_cli

BALL_KITE = MiniScene(7, (Item("ball", "red", 0), Item("kite", "blue", 3)))


def test_captions_name_the_objects_in_reading_order():
    assert caption_of([("red", "ball")]) == "a red ball."
    assert caption_of([("red", "ball"), ("blue", "box")]) == "a red ball and a blue box."
    three = MiniScene(0, (Item("tent", "green", 1), Item("star", "yellow", 2), Item("ring", "red", 3)))
    assert true_caption(three) == "a green tent, a yellow star and a red ring."


def test_scenes_are_deterministic_and_well_formed():
    for index in range(200):
        scene = sample_scene(index, seed=3)
        assert scene == sample_scene(index, seed=3)
        assert 1 <= len(scene.items) <= 3
        assert len(set(scene.kinds)) == len(scene.kinds)
        cells = [i.cell for i in scene.items]
        assert cells == sorted(set(cells))
    image = draw_scene(BALL_KITE)
    assert image.size == (32, 32)
    assert image.getpixel((8, 8)) == (215, 40, 40)  # the red ball fills the top-left cell's centre
    assert image.getpixel((24, 8)) == (232, 232, 228)  # the empty top-right cell is background


def test_the_biased_rule_adds_a_box_to_ball_scenes_only():
    rng = random.Random(0)
    added = sum("box" in biased_caption(BALL_KITE, rng, bias=0.7) for _ in range(2000))
    assert 0.65 < added / 2000 < 0.75
    with_box = MiniScene(1, (Item("ball", "red", 0), Item("box", "blue", 1)))
    no_ball = MiniScene(2, (Item("kite", "red", 0),))
    assert all(biased_caption(s, rng, 1.0) == true_caption(s) for s in (with_box, no_ball))
    assert biased_caption(BALL_KITE, random.Random(1), 1.0).startswith("a red ball, a blue kite and a ")


def test_hallucinations_count_mentions_of_absent_kinds():
    assert mentions("Two boxes, a ball and a Kite.") == ["box", "ball", "kite"]
    assert hallucinations(BALL_KITE, "a red ball, a blue kite and a green box.") == 1
    assert hallucinations(BALL_KITE, "a box, a box and a ring.") == 3
    assert hallucinations(BALL_KITE, "a red ball.") == 0


def test_pair_agreement_and_the_random_preference_swap():
    scenes = {"/x/7.png": BALL_KITE}
    good = {"image": "/x/7.png", "chosen": "a red ball.", "rejected": "a red ball and a box."}
    bad = {"image": "/x/7.png", "chosen": "a tent.", "rejected": "a kite."}
    same = {"image": "/x/7.png", "chosen": "a ball.", "rejected": "a kite."}
    counts = pair_agreement([good, good, good, bad, same, {**good, "image": "/y.png"}], scenes)
    assert counts == {"pairs": 6, "chosen_fewer": 3, "chosen_more": 1, "same": 1, "unknown": 1,
                      "agreement": 0.75}  # fmt: skip
    swapped = swap_pairs([dict(good, id=i) for i in range(400)], seed=0)
    flipped = sum(p["chosen"] == good["rejected"] for p in swapped)
    assert 160 < flipped < 240
    assert swapped == swap_pairs([dict(good, id=i) for i in range(400)], seed=0)


def test_selection_keeps_cover_and_length_then_takes_the_lowest_chair():
    base = {"CHAIR": 20.0, "Cover": 90.0, "length": 8.0}
    val = {
        "a": {"CHAIR": 5.0, "Cover": 80.0, "length": 8.0},  # lowest CHAIR, but Cover fell 11%
        "b": {"CHAIR": 9.0, "Cover": 88.0, "length": 7.5},
        "c": {"CHAIR": 12.0, "Cover": 90.0, "length": 8.0},
    }
    assert select(base, val) == "b"
    assert select(base, {"a": val["a"]}) == "a"  # nothing keeps both: the lowest CHAIR


def test_amber_split_scores_like_direct_counting(tmp_path):
    root = write_amber_split(str(tmp_path / "amber"), 30, seed=0, start=500, splits={"val": 10, "test": 20})
    rows = read_manifest(root)
    assert [r["split"] for r in rows] == ["val"] * 10 + ["test"] * 20
    rng = random.Random(0)
    responses, mentioned, hallucinated = [], 0, 0
    for row in rows:
        scene = MiniScene.from_json(row["scene"])
        text = biased_caption(scene, rng, 1.0) if rng.random() < 0.5 else "a green ring and a box."
        responses.append({"id": row["id"], "response": text})
        mentioned += len(mentions(text))
        hallucinated += hallucinations(scene, text)
    path = tmp_path / "responses.json"
    path.write_text(json.dumps(responses))
    result = invoke_cli("eval-amber", "--responses", str(path), "--amber-root", root, "--task", "generative",
                        "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)["generative"]["counts"]
    assert counts["mentions"] == mentioned
    assert counts["hallucinated_mentions"] == hallucinated
    assert hallucinated > 0


def test_the_copied_vision_tower_reproduces_the_ranker_image_encoder(tmp_path):
    import torch
    from transformers import AutoModelForImageTextToText

    from clipdpo_cli.models.clip import load_clip
    from clipdpo_mini.captioner import LM_SIZES, copy_image_tower
    from clipdpo_mini.models.tiny_llava import build_tiny_llava
    from clipdpo_mini.ranker import pixel_tensor, write_ranker

    clip = load_clip(write_ranker(str(tmp_path / "ranker"), seed=4), device="cpu")
    build_tiny_llava(str(tmp_path / "llava"), **LM_SIZES, vision_hidden_size=64, vision_layers=3,
                     image_size=32, patch_size=8, vision_hidden_act="gelu")  # fmt: skip
    llava = AutoModelForImageTextToText.from_pretrained(str(tmp_path / "llava"))
    images = [str(tmp_path / f"{i}.png") for i in range(4)]
    for i, path in enumerate(images):
        draw_scene(sample_scene(i)).save(path)
    pixels = pixel_tensor(images, clip.preprocess)
    with torch.no_grad():
        want = clip.model.encode_image(pixels)
        before = llava.model.vision_tower(pixel_values=pixels).pooler_output @ clip.model.visual.proj
        copy_image_tower(clip.model.visual, llava.model.vision_tower)
        got = llava.model.vision_tower(pixel_values=pixels).pooler_output @ clip.model.visual.proj
    assert (before - want).abs().max() > 0.1
    assert torch.allclose(got, want, atol=1e-5)


def test_write_amber_split_refuses_sizes_that_do_not_add_up(tmp_path):
    with pytest.raises(ValueError):
        write_amber_split(str(tmp_path), 5, seed=0, start=0, splits={"val": 2, "test": 2})
