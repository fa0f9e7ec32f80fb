"""`clipdpo export`: pairs -> TRL's conversational vision preference data (trained on by TRL's own DPOTrainer
and collator, loaded with `datasets`), LLaMA-Factory's sharegpt ranking layout and dataset_info.json entry
(checked against the schema its data/README.md documents), parquet with embedded images."""

from __future__ import annotations

import json
import math
import os
import shutil

import pytest

from tests.conftest import invoke_cli
from tests.train.train_helpers import main_in_process


def write_pairs(folder, records) -> str:
    path = os.path.join(folder, "pairs.jsonl")
    with open(path, "w") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
    return path


def read_jsonl(path: str) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture
def relative_pair(tmp_path):
    """One pair whose image path is relative to an image root, as `pair` writes it from `caption DIR`."""
    from PIL import Image

    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (24, 16), (200, 10, 10)).save(root / "sub" / "a.png")
    record = {
        "id": "0b7e5d2c4a9f1e36", "image": "sub/a.png", "kind": "caption", "prompt": "Describe this image.",
        "chosen": "A red square.", "rejected": "A blue circle.", "chosen_score": 33.0, "rejected_score": 29.1,
        "margin": 3.9,
    }  # fmt: skip
    return write_pairs(str(tmp_path), [record]), str(root)


def test_trl_and_sharegpt_rows_by_hand(relative_pair):
    pairs, root = relative_pair
    image = os.path.join(root, "sub", "a.png")
    trl = invoke_cli("export", pairs, "--format", "trl", "--image-root", root)
    assert trl.exit_code == 0, trl.stderr
    assert json.loads(trl.stdout) == {
        "id": "0b7e5d2c4a9f1e36",
        "images": [image],
        "prompt": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}
        ],
        "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "A red square."}]}],
        "rejected": [{"role": "assistant", "content": [{"type": "text", "text": "A blue circle."}]}],
    }
    sharegpt = invoke_cli("export", pairs, "--format", "sharegpt", "--image-root", root)
    assert sharegpt.exit_code == 0, sharegpt.stderr
    assert json.loads(sharegpt.stdout) == {
        "id": "0b7e5d2c4a9f1e36",
        "conversations": [{"from": "human", "value": "<image>Describe this image."}],
        "chosen": {"from": "gpt", "value": "A red square."},
        "rejected": {"from": "gpt", "value": "A blue circle."},
        "images": [image],
    }
    assert "1 in, 1 out" in sharegpt.stderr


def test_bad_pairs_fail_or_are_skipped(tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    ok = {"image": str(tmp_path / "ok.png"), "prompt": "Describe.", "chosen": "a", "rejected": "b"}
    pairs = write_pairs(
        str(tmp_path),
        [
            {"id": "good", **ok},
            {"id": "gone", **ok, "image": str(tmp_path / "missing.png")},
            {"id": "token", **ok, "prompt": "<image>\nDescribe."},
            {"id": "empty", **ok, "rejected": "  "},
        ],
    )
    code, _, err = main_in_process(capsys, "export", pairs, "-o", str(tmp_path / "out.jsonl"))
    assert code == 1
    assert (
        f"record gone (image {tmp_path / 'missing.png'}): image not found: {tmp_path / 'missing.png'}" in err
    )
    out = str(tmp_path / "skip.jsonl")
    code, _, err = main_in_process(capsys, "export", pairs, "-o", out, "--on-error", "skip")
    assert code == 0, err
    assert [r["id"] for r in read_jsonl(out)] == ["good"]
    assert "missing image" in err and "image token in prompt" in err and "empty answer" in err


def test_trl_export_trains_with_trls_own_dpo_trainer(tiny_llava, toy_pairs, tmp_path):
    """load_dataset("json") + TRL's DataCollatorForVisionPreference + DPOTrainer, nothing of clipdpo's."""
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import DPOConfig, DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    out = str(tmp_path / "pairs.trl.jsonl")
    result = invoke_cli("export", toy_pairs, "--format", "trl", "-o", out)
    assert result.exit_code == 0, result.stderr
    dataset = load_dataset("json", data_files=out, split="train", cache_dir=str(tmp_path / "cache"))
    assert len(dataset) == 8 and dataset[0]["images"] == [read_jsonl(toy_pairs)[0]["image"]]

    processor = AutoProcessor.from_pretrained(tiny_llava)
    model = AutoModelForImageTextToText.from_pretrained(tiny_llava)
    # exactly one image's tokens per sequence (the tiny LLaVA: (32 / 8) ** 2 = 16), chosen and rejected
    batch = DataCollatorForVisionPreference(processor)([dict(dataset[0]), dict(dataset[1])])
    image_id = model.config.image_token_index
    assert (batch["input_ids"] == image_id).sum(dim=1).tolist() == [16, 16, 16, 16]
    assert batch["pixel_values"].shape[0] == 4

    torch.manual_seed(0)
    args = DPOConfig(
        output_dir=str(tmp_path / "trl-run"), max_steps=1, per_device_train_batch_size=2, use_cpu=True,
        report_to="none", bf16=False, logging_steps=1, save_strategy="no", gradient_checkpointing=False,
        disable_tqdm=True,
    )  # fmt: skip
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor)
    trainer.train()
    assert trainer.state.global_step == 1
    first = trainer.state.log_history[0]
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-4)  # policy == reference at the first step
    assert first["logps/chosen"] < 0 and first["logps/rejected"] < 0


def test_parquet_embeds_the_images(tiny_llava, toy_pairs, tmp_path):
    from datasets import load_dataset
    from PIL import Image
    from transformers import AutoProcessor
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    source = read_jsonl(toy_pairs)
    copies = tmp_path / "copies"
    shutil.copytree(os.path.dirname(toy_pairs), copies)
    pairs = write_pairs(str(copies), [{**r, "image": os.path.basename(r["image"])} for r in source])
    out = str(tmp_path / "pairs.parquet")
    result = invoke_cli("export", pairs, "--format", "parquet", "--image-root", str(copies), "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "wrote" in result.stderr and "8 rows, images embedded" in result.stderr
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]
    shutil.rmtree(copies)  # the images travel inside the file
    dataset = load_dataset("parquet", data_files=out, split="train", cache_dir=str(tmp_path / "cache"))
    assert [r["id"] for r in dataset] == [r["id"] for r in source]
    for row, record in zip(dataset, source, strict=True):
        (image,) = row["images"]
        with Image.open(record["image"]) as original:
            assert image.size == original.size and image.tobytes() == original.convert("RGB").tobytes()
        assert row["chosen"][0]["content"][0]["text"] == record["chosen"]
    batch = DataCollatorForVisionPreference(AutoProcessor.from_pretrained(tiny_llava))([dict(dataset[0])])
    assert batch["pixel_values"].shape[0] == 2


def test_parquet_needs_an_output_file(toy_pairs, capsys):
    code, _, err = main_in_process(capsys, "export", toy_pairs, "--format", "parquet")
    assert code == 2 and "--format parquet needs -o FILE" in err


# LLaMA-Factory's documented dataset description (data/README.md of hiyouga/LLaMA-Factory).
LLAMAFACTORY_KEYS = {
    "hf_hub_url", "ms_hub_url", "script_url", "cloud_file_name", "file_name", "formatting", "ranking",
    "subset", "split", "folder", "num_samples", "columns", "tags",
}  # fmt: skip
LLAMAFACTORY_COLUMNS = {
    "prompt", "query", "response", "history", "messages", "system", "tools", "images", "videos", "audios",
    "chosen", "rejected", "kto_tag",
}  # fmt: skip


def check_sharegpt_ranking(example: dict, entry: dict, data_dir: str) -> None:
    """What LLaMA-Factory's sharegpt converter and multimodal plugin require of a ranking example."""
    columns = entry["columns"]
    messages = example[columns.get("messages", "conversations")]
    roles = [m["from"] for m in messages]
    assert roles == ["human", "gpt"] * (len(roles) // 2) + ["human"]  # human at odd positions, odd count
    for answer in ("chosen", "rejected"):
        assert (
            set(example[columns[answer]]) == {"from", "value"} and example[columns[answer]]["from"] == "gpt"
        )
    images = example[columns["images"]]
    assert sum(m["value"].count("<image>") for m in messages) == len(images) == 1
    assert all(os.path.isfile(os.path.join(data_dir, image)) for image in images)  # media_dir join


def test_llamafactory_layout_matches_its_documented_schema(toy_pairs, tmp_path):
    from datasets import load_dataset

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    existing = {"dpo_en_demo": {"file_name": "dpo_en_demo.json", "ranking": True, "formatting": "sharegpt"}}
    (data_dir / "dataset_info.json").write_text(json.dumps(existing))
    out = str(data_dir / "clipdpo_pairs.jsonl")
    result = invoke_cli("export", toy_pairs, "--format", "llamafactory", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert f"registered 'clipdpo_pairs' in {data_dir / 'dataset_info.json'}" in result.stderr
    info = json.loads((data_dir / "dataset_info.json").read_text())
    assert info["dpo_en_demo"] == existing["dpo_en_demo"]  # other datasets stay registered
    entry = info["clipdpo_pairs"]
    assert entry == {
        "file_name": "clipdpo_pairs.jsonl",
        "formatting": "sharegpt",
        "ranking": True,
        "columns": {
            "messages": "conversations",
            "chosen": "chosen",
            "rejected": "rejected",
            "images": "images",
        },
    }
    assert set(entry) <= LLAMAFACTORY_KEYS and set(entry["columns"]) <= LLAMAFACTORY_COLUMNS
    assert entry["formatting"] in ("alpaca", "sharegpt") and isinstance(entry["ranking"], bool)
    # LLaMA-Factory loads the file (a json/jsonl extension) with datasets' json builder
    assert os.path.splitext(entry["file_name"])[1] in (".json", ".jsonl")
    dataset = load_dataset(
        "json", data_files=str(data_dir / entry["file_name"]), split="train", cache_dir=str(tmp_path / "c")
    )
    assert len(dataset) == 8
    for example in dataset:
        check_sharegpt_ranking(example, entry, str(data_dir))
    again = invoke_cli("export", toy_pairs, "--format", "llamafactory", "-o", out, "--dataset-name", "run2")
    assert again.exit_code == 0
    assert set(json.loads((data_dir / "dataset_info.json").read_text())) == {
        "dpo_en_demo", "clipdpo_pairs", "run2"
    }  # fmt: skip


@pytest.mark.parametrize(
    "args, message",
    [
        (("--format", "llamafactory"), "--format llamafactory needs -o FILE"),
        (("--format", "llamafactory", "-o", "OUT/x.txt"), "-o must end in .json or .jsonl"),
    ],
)
def test_llamafactory_output_mistakes(args, message, toy_pairs, tmp_path, capsys):
    args = tuple(a.replace("OUT", str(tmp_path)) for a in args)
    code, _, err = main_in_process(capsys, "export", toy_pairs, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
