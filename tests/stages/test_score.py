"""The score stage: parity with open_clip, one encoding per image, text batching shortcuts, record errors."""

from __future__ import annotations

import os

import pytest
import torch

from clipdpo_cli.io.errors import RecordFailure, UsageError
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.models.clip import ClipModel, supports_short_context
from clipdpo_cli.qa import qa_to_caption
from clipdpo_cli.stages.score import ScoreSettings, score_records

CAPTIONS = [
    "A brown dog sleeps on a red couch next to a window.",
    "Two people walk along a sandy beach at sunset, holding hands!",
    "A cat.",
    "",
    "A very long caption " + "with many repeated words " * 30,  # truncated at 77 tokens
    "Wow!!! Look!",  # '!' is token id 0, like the padding
]


def records_for(image_dir: str, per_image: int = 3, images: int = 4) -> list[dict]:
    out = []
    for i in range(images):
        for j in range(per_image):
            text = CAPTIONS[(i + j) % len(CAPTIONS)]
            out.append(
                {"id": f"{i}-{j}", "image": os.path.join(image_dir, f"img{i}.png"), "text": text, "k": j}
            )
    return out


@pytest.fixture(scope="module")
def reference(tiny_clip_name):
    """open_clip on its own: model, eval transform and tokenizer from the same directory."""
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(tiny_clip_name)
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(tiny_clip_name)


def reference_score(reference, image_path: str, text: str) -> float:
    from PIL import Image

    model, preprocess, tokenizer = reference
    with torch.no_grad():
        image = model.encode_image(preprocess(Image.open(image_path).convert("RGB"))[None], normalize=True)
        txt = model.encode_text(tokenizer([text]), normalize=True)
    return 100.0 * float(image[0] @ txt[0])


@pytest.mark.parametrize("workers", [0, 2])
def test_scores_equal_100_cosine_from_open_clip_directly(tiny_clip, reference, image_dir, workers):
    records = records_for(image_dir)
    out = list(score_records(records, tiny_clip, ScoreSettings(batch_size=3, workers=workers)))
    assert [r["id"] for r in out] == [r["id"] for r in records]
    for rec, res in zip(records, out, strict=True):
        assert res == {**rec, "clip_score": res["clip_score"], "scorer": tiny_clip.name}
        assert res["clip_score"] == pytest.approx(
            reference_score(reference, rec["image"], rec["text"]), abs=1e-4
        )
    assert len({r["clip_score"] for r in out}) > 6  # the scores really differ between texts and images


def test_each_distinct_image_is_decoded_and_encoded_once(tiny_clip, image_dir, monkeypatch):
    import clipdpo_cli.models.clip_images as clip_images

    loads: list[str] = []
    real_load = clip_images.load_image
    monkeypatch.setattr(clip_images, "load_image", lambda p, root=None: loads.append(p) or real_load(p, root))
    encoded: list[int] = []
    real_encode = ClipModel.encode_pixels

    def counting(self, pixels):
        encoded.append(len(pixels))
        return real_encode(self, pixels)

    monkeypatch.setattr(ClipModel, "encode_pixels", counting)
    records = records_for(image_dir, per_image=5, images=5)  # 25 records of 5 images, grouped
    records.insert(7, dict(records[0], id="again"))  # img0 again inside the first chunk: shared
    out = list(score_records(records, tiny_clip, ScoreSettings(batch_size=2, workers=0)))
    assert len(out) == 26
    assert sorted(os.path.basename(p) for p in loads) == [f"img{i}.png" for i in range(5)]
    assert encoded == [2, 2, 1]  # batches of at most 2 distinct images
    again = next(r for r in out if r["id"] == "again")
    assert again["clip_score"] == out[0]["clip_score"]


def test_short_context_gives_the_full_context_embeddings(tiny_clip):
    tokens = tiny_clip.tokenizer(CAPTIONS)
    assert tiny_clip.short_context and supports_short_context(tiny_clip.model)
    short = tiny_clip.encode_tokens(tokens, shorten=True)
    full = tiny_clip.encode_tokens(tokens, shorten=False)
    assert torch.allclose(short, full, atol=1e-5)
    # and the batched, length-sorted path keeps the input order
    one_by_one = torch.cat(
        [tiny_clip.encode_tokens(tiny_clip.tokenizer([c]), shorten=False) for c in CAPTIONS]
    )
    assert torch.allclose(tiny_clip.encode_texts(CAPTIONS, batch_size=2), one_by_one, atol=1e-5)


def test_short_context_really_runs_fewer_positions(tiny_clip, monkeypatch):
    seen: list[int] = []
    blocks = tiny_clip.model.transformer
    hook = blocks.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(args[0].shape[1]), with_kwargs=True
    )
    try:
        tiny_clip.encode_texts(["a cat", "a dog on a sofa"])
    finally:
        hook.remove()
    assert seen == [len(tiny_clip.tokenizer.encode("a dog on a sofa")) + 2]  # + start and end tokens


def test_towers_pooled_at_the_last_position_are_not_shortened():
    import copy

    import open_clip

    from clipdpo_mini.models.tiny_clip import TINY_CONFIG

    cfg = copy.deepcopy(TINY_CONFIG)
    assert supports_short_context(open_clip.CLIP(**cfg))
    cfg["text_cfg"]["pool_type"] = "last"
    assert not supports_short_context(open_clip.CLIP(**cfg))
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["text_cfg"]["no_causal_mask"] = True
    assert not supports_short_context(open_clip.CLIP(**cfg))
    assert not supports_short_context(open_clip.CustomTextCLIP(**copy.deepcopy(TINY_CONFIG)))


def test_qa_records_score_their_answer_check_and_question(tiny_clip, reference, image_dir):
    image = os.path.join(image_dir, "img1.png")
    question, answer = "What color is the car?", "red"
    qa = {"id": "q", "image": image, "kind": "qa", "question": question, "answer_pos": answer,
          "answer_neg": "blue", "text": qa_to_caption(question, answer)}  # fmt: skip
    (scored,) = score_records([qa], tiny_clip)
    assert scored["text"] == "The car is red."
    assert scored["clip_score"] == pytest.approx(
        reference_score(reference, image, "The car is red."), abs=1e-4
    )
    options = ScoreSettings(field="question", score_field="question_score")
    (both,) = score_records([scored], tiny_clip, options)
    assert both["clip_score"] == scored["clip_score"]
    assert both["question_score"] == pytest.approx(reference_score(reference, image, question), abs=1e-4)


def test_template(tiny_clip, reference, image_dir):
    image = os.path.join(image_dir, "img2.png")
    options = ScoreSettings(template="a photo of a {label}, {style}", score_field="s")
    (out,) = score_records(
        [{"id": "t", "image": image, "label": "dog", "style": "blurry"}], tiny_clip, options
    )
    assert out["s"] == pytest.approx(reference_score(reference, image, "a photo of a dog, blurry"), abs=1e-4)
    with pytest.raises(UsageError, match="uses no field"):
        list(score_records([], tiny_clip, ScoreSettings(template="a photo")))


def test_existing_scores_are_not_replaced_silently(tiny_clip, image_dir):
    rec = {"id": "x", "image": os.path.join(image_dir, "img0.png"), "text": "a", "clip_score": 1.0}
    with pytest.raises(UsageError, match="already has 'clip_score'.*--overwrite"):
        list(score_records([rec], tiny_clip))
    (out,) = score_records([rec], tiny_clip, ScoreSettings(overwrite=True))
    assert out["clip_score"] != 1.0
    other = {**rec, "clip_score": None, "scorer": "vit-l14"}
    del other["clip_score"]
    with pytest.raises(UsageError, match="scored by 'vit-l14'"):
        list(score_records([other], tiny_clip))


def test_bad_records_follow_the_error_policy(tiny_clip, image_dir):
    good = records_for(image_dir, per_image=1, images=2)
    bad = [
        {"id": "no-text", "image": good[0]["image"]},
        {"id": "corrupt", "image": os.path.join(image_dir, "bad.png"), "text": "x"},
        {"id": "missing", "image": os.path.join(image_dir, "nope.png"), "text": "x"},
        {"id": "no-image", "text": "x"},
    ]
    ctx = StageContext("score", on_error="skip")
    out = list(score_records([good[0], *bad, good[1]], tiny_clip, ScoreSettings(batch_size=2), ctx))
    assert [r["id"] for r in out] == ["0-0", "1-0"]
    assert dict(ctx.stats.skipped) == {
        "missing field 'text'": 1, "corrupt image": 1, "image not found": 1, "missing field 'image'": 1,
    }  # fmt: skip
    ctx = StageContext("score", on_error="fail")
    results = score_records([good[0], bad[1], good[1]], tiny_clip, ScoreSettings(batch_size=1), ctx)
    assert next(results)["id"] == "0-0"  # records before the bad one come out first
    with pytest.raises(RecordFailure, match=r"record corrupt \(image .*bad.png\): cannot decode image"):
        next(results)


def test_bf16_autocast_is_close_to_fp32(tiny_clip_name, image_dir):
    from clipdpo_cli.models.clip import load_clip

    records = records_for(image_dir, per_image=2, images=3)
    fp32 = [r["clip_score"] for r in score_records(records, load_clip(tiny_clip_name, "cpu", "fp32"))]
    bf16 = [r["clip_score"] for r in score_records(records, load_clip(tiny_clip_name, "cpu", "bf16"))]
    diffs = [abs(a - b) for a, b in zip(fp32, bf16, strict=True)]
    assert 0 < max(diffs) < 2.0  # really computed in bf16, and still the same scores to ~1%


def test_text_parts_sentences_and_clauses():
    from clipdpo_cli.stages.score import text_parts

    text = "A dog sleeps. Is it red? Yes!  A cat, a bird and a kite sit on 3.5 mats."
    last = "A cat, a bird and a kite sit on 3.5 mats."
    assert text_parts(text) == ["A dog sleeps.", "Is it red?", "Yes!", last]
    assert text_parts("a red ball, a blue box and a green kite.", "clause") == [
        "a red ball", "a blue box", "a green kite."
    ]  # fmt: skip
    assert text_parts("One: two; Three AND four. Five", "clause") == ["One", "two", "Three", "four.", "Five"]
    assert text_parts("", "clause") == [""] and text_parts("  ") == ["  "]  # nothing to split: scored whole
    with pytest.raises(UsageError, match="--parts must be one of sentence, clause"):
        text_parts("x", "word")


@pytest.mark.parametrize("parts", ["sentence", "clause"])
def test_per_sentence_is_the_mean_or_min_of_each_part_scored_alone(tiny_clip, reference, image_dir, parts):
    from clipdpo_cli.stages.score import text_parts

    texts = ["A brown dog sleeps. Two people walk, a cat and a kite.", "A cat.", "Wow!!! Look!", ""]
    records = [
        {"id": f"{i}-{j}", "image": os.path.join(image_dir, f"img{i}.png"), "text": t}
        for i in range(3) for j, t in enumerate(texts)
    ]  # fmt: skip
    for how, combine in (("mean", lambda v: sum(v) / len(v)), ("min", min)):
        options = ScoreSettings(per_sentence=how, parts=parts, batch_size=3)
        out = list(score_records(records, tiny_clip, options))
        assert [r["id"] for r in out] == [r["id"] for r in records]
        for rec, res in zip(records, out, strict=True):
            each = [reference_score(reference, rec["image"], p) for p in text_parts(rec["text"], parts)]
            assert res["clip_score"] == pytest.approx(combine(each), abs=1e-4)
    # the first text has 2 sentences and 4 clauses: its per-part mean is not its whole-text score
    whole = reference_score(reference, records[0]["image"], texts[0])
    assert abs(out[0]["clip_score"] - whole) > 1e-3
    with pytest.raises(UsageError, match="--per-sentence must be one of mean, min"):
        list(score_records(records, tiny_clip, ScoreSettings(per_sentence="max")))
