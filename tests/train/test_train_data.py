"""Pairs -> training rows, KTO unpairing, the vision collator (lazy images, image tokens never cut)."""

from __future__ import annotations

import json

import pytest

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.io.jsonl import read_jsonl
from clipdpo_cli.train.data import VisionPairCollator, collect_pairs, to_dataset, unpair
from clipdpo_cli.train.loading import load_processor, text_max_length


def test_collect_pairs_validates_and_keeps_complete_reference_columns(toy_pairs, tmp_path):
    records = list(read_jsonl(toy_pairs))
    pairs = collect_pairs(records)
    assert len(pairs) == 8 and not pairs.has_ref
    assert pairs.columns["chosen"][0] == "a red ball on a table"

    bad = [*records[:2], {**records[2], "image": str(tmp_path / "gone.png")}, {"id": "x", "image": "a.png"}]
    with pytest.raises(InputError, match=r"pair 3 \(id p2\): image not found"):
        collect_pairs(bad)
    skipped = collect_pairs(bad, skip_bad=True)
    assert len(skipped) == 2 and skipped.skipped == {"image not found": 1, "missing field 'prompt'": 1}

    with_ref = [
        {**r, "ref_chosen_logps": -1.5, "ref_rejected_logps": -2.0, "ref_model": "m"} for r in records
    ]
    assert collect_pairs(with_ref).has_ref and collect_pairs(with_ref).ref_model == "m"
    partial = with_ref[:3] + records[3:]  # some pairs lack them: none are used
    assert not collect_pairs(partial).has_ref


def test_relative_images_resolve_against_image_root(toy_pairs, tmp_path):
    import os

    records = [{**r, "image": os.path.basename(r["image"])} for r in read_jsonl(toy_pairs)]
    root = os.path.dirname(toy_pairs)
    assert collect_pairs(records, image_root=root).columns["image"][0] == os.path.join(root, "img0.png")


def test_dataset_holds_paths_not_pixels(toy_pairs):
    dataset = to_dataset(collect_pairs(read_jsonl(toy_pairs)))
    assert dataset.column_names == ["id", "image", "prompt", "chosen", "rejected"]
    assert isinstance(dataset[0]["image"], str)  # opened only when a batch is collated


def test_unpair_blocks_keep_neighbours_on_other_images(toy_pairs):
    pairs = collect_pairs(read_jsonl(toy_pairs))
    out = unpair(pairs, group=2, seed=0)
    assert len(out["label"]) == 16 and sum(out["label"]) == 8
    assert out["label"][:4] == [True, True, False, False]
    for start in range(0, 16, 4):  # a batch of 4: KL pairs each prompt with its left neighbour (cyclic)
        images = out["image"][start : start + 4]
        assert all(images[i] != images[i - 1] for i in range(4))
    chosen = dict(zip(out["id"][:2], out["completion"][:2], strict=True))
    assert all(text == "a red ball on a table" for text in chosen.values())
    assert sorted(out["id"]) == sorted([f"p{i}:{a}" for i in range(8) for a in ("chosen", "rejected")])


def test_collator_builds_chosen_then_rejected_rows(tiny_llava, toy_pairs):
    processor = load_processor(tiny_llava)
    rows = [to_dataset(collect_pairs(read_jsonl(toy_pairs)))[i] for i in range(3)]
    batch = VisionPairCollator(processor)(rows)
    assert batch["input_ids"].shape[0] == 6 and batch["pixel_values"].shape[0] == 6
    image_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    per_row = (batch["input_ids"] == image_id).sum(dim=1)
    assert (per_row == 16).all()  # (32 px / 8 px patches) ** 2, the CLS feature dropped
    text = processor.tokenizer.decode(batch["input_ids"][0][batch["completion_mask"][0].bool()])
    assert "red ball" in text and "blue" not in text
    text = processor.tokenizer.decode(batch["input_ids"][3][batch["completion_mask"][3].bool()])
    assert "blue cube" in text


def test_max_length_counts_text_tokens_only(tiny_llava, toy_pairs):
    processor = load_processor(tiny_llava)
    assert text_max_length(6) == 6 and text_max_length(None) is None
    rows = [to_dataset(collect_pairs(read_jsonl(toy_pairs)))[0]]
    full = VisionPairCollator(processor)(rows)
    image_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    prompt_len = int((full["completion_mask"][0] == 0).sum())
    text_in_prompt = prompt_len - 16
    budget = text_in_prompt + 2  # the prompt's text and the first two completion tokens
    batch = VisionPairCollator(processor, max_text=budget)(rows)
    assert batch["input_ids"].shape[1] == budget + 16
    assert int((batch["input_ids"][0] == image_id).sum()) == 16  # every image token kept
    assert int(batch["completion_mask"][0].sum()) == 2 == int(batch["completion_mask"][1].sum())
    assert batch["input_ids"][0, :prompt_len + 2].tolist() == full["input_ids"][0, :prompt_len + 2].tolist()
    tiny = VisionPairCollator(processor, max_text=1)(rows)  # the prompt itself is never cut
    assert tiny["input_ids"].shape[1] == prompt_len and int(tiny["completion_mask"].sum()) == 0


def test_processor_without_chat_template_is_a_clear_error(tiny_llava, tmp_path):
    import shutil

    copy = tmp_path / "no-template"
    shutil.copytree(tiny_llava, copy)
    for name in ("chat_template.jinja", "chat_template.json"):
        (copy / name).unlink(missing_ok=True)
    config = copy / "processor_config.json"
    data = json.loads(config.read_text())
    data.pop("chat_template", None)
    config.write_text(json.dumps(data))
    with pytest.raises(InputError, match="no chat template.*--chat-template"):
        load_processor(str(copy))
    template = "{% for m in messages %}{{ m['role'] }}{% endfor %}"
    assert load_processor(str(copy), chat_template=template).chat_template == template


def test_reference_mode_warns_when_the_pairs_came_from_another_reference(capsys):
    from clipdpo_cli.io.pairs import REF_FIELDS
    from clipdpo_cli.train.build import reference_mode
    from clipdpo_cli.train.data import PairColumns
    from clipdpo_cli.train.losses import resolve_loss
    from clipdpo_cli.train.settings import TrainSettings

    pairs = PairColumns(ref_model="models/base")
    pairs.columns["id"].append("p0")
    for name in REF_FIELDS:
        pairs.columns[name] = [-1.0]
    settings = TrainSettings(pairs="-", model="models/sft", output_dir="o")
    assert reference_mode(settings, pairs, resolve_loss("dpo")) == "precomputed"
    err = capsys.readouterr().err
    assert "computed with 'models/base'" in err and "the reference is 'models/sft'" in err
    same = TrainSettings(pairs="-", model="models/base", output_dir="o")
    assert reference_mode(same, pairs, resolve_loss("dpo")) == "precomputed"
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize(("rank", "said"), [(None, True), ("0", True), ("1", False)])
def test_no_answer_warning_said_once_by_rank_zero(monkeypatch, capsys, rank, said):
    """Under accelerate every process collates its own batches: only rank 0 says the warning (io/log.py)."""
    import types

    import torch


    monkeypatch.delenv("LOCAL_RANK", raising=False)
    if rank is None:
        monkeypatch.delenv("RANK", raising=False)
    else:
        monkeypatch.setenv("RANK", rank)
    collator = types.SimpleNamespace(warned=False, max_text=5)
    batch = {"completion_mask": torch.tensor([[0, 0], [1, 0]])}
    VisionPairCollator.warn_if_no_answer(collator, batch)
    VisionPairCollator.warn_if_no_answer(collator, batch)
    expected = (
        "clipdpo train: warning: --max-length 5 leaves 1 of 2 rows of a batch no answer tokens (the prompt's "
        "text alone fills it); those pairs add a constant loss\n"
    )
    assert capsys.readouterr().err == (expected if said else "")
