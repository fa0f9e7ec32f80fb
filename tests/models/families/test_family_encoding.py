"""The one conversation encoding on every real family: what training sees is what generation feeds and emits.

Expected ids are computed independently of models/conversation.py: the prompt through transformers' own
`processor.apply_chat_template(tokenize=True)` (its generation path), the completion as the tokenizer
splits the text the way the model emits it after the generation prompt (hand-written per family: with the
space SmolVLM's "Assistant:" leaves, without one after ChatML's "\\n"), then the family's real end-of-turn
token.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from clipdpo_cli.models.conversation import ChatEncoding
from clipdpo_mini.models.families import FAMILIES, PALIGEMMA_TEMPLATE
from tests.conftest import invoke_cli

PROMPT = "Describe the image."
TEXT = "A red ball on a table."

# Per family: the BOS the prompt starts with (None: none), the text the model emits before the caption
# words, the end-of-turn token generation stops on, and the image tokens of a 64x48 image.
EXPECT = {
    "llava15": {"bos": "<s>", "lead": "", "eot": "</s>", "image_tokens": 576},
    # anyres: the 336x672 grid, unpadded to 24 x 32 features, + 24 row ends + the 576 base features
    "llava_next": {"bos": "<s>", "lead": "", "eot": "</s>", "image_tokens": 24 * 32 + 24 + 576},
    "qwen2_vl": {"bos": None, "lead": "", "eot": "<|im_end|>", "image_tokens": 4},
    "qwen2_5_vl": {"bos": None, "lead": "", "eot": "<|im_end|>", "image_tokens": 4},
    "smolvlm": {"bos": "<|im_start|>", "lead": " ", "eot": "<end_of_utterance>", "image_tokens": 13 * 64},
    "paligemma": {"bos": "<bos>", "lead": "", "eot": "<eos>", "image_tokens": 256},
    # MobileVLM's v1 conversation writes "ASSISTANT: text</s>"; LDPv2 pools every image to 12 x 12
    "mobilevlm_v2": {"bos": "<s>", "lead": "", "eot": "</s>", "image_tokens": 144},
}


def load(family_dir, key: str):
    from clipdpo_cli.models.lvlm import load_lvlm_processor

    template = PALIGEMMA_TEMPLATE if FAMILIES[key].needs_template else None
    return load_lvlm_processor(family_dir(key), chat_template=template)


def image() -> Image.Image:
    return Image.new("RGB", (64, 48), (200, 30, 30))


def reference_prompt_ids(processor, picture: Image.Image | None = None) -> list[int]:
    """transformers' own generation-prompt ids (apply_chat_template with tokenize=True)."""
    content = [{"type": "image", "image": picture or image()}, {"type": "text", "text": PROMPT}]
    conversation = [{"role": "user", "content": content}]
    out = processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    ids = out["input_ids"]
    return list(ids[0] if isinstance(ids[0], list) else ids)


def expected_completion(processor, key: str) -> list[int]:
    tok = processor.tokenizer
    pieces = tok.tokenize(EXPECT[key]["lead"] + TEXT) + [EXPECT[key]["eot"]]
    return tok.convert_tokens_to_ids(pieces)


def test_every_family_of_the_issue_is_built():
    assert set(EXPECT) == set(FAMILIES)


@pytest.mark.parametrize("key", sorted(EXPECT))
def test_prompt_ids_are_the_generation_ids(family_dir, key):
    processor = load(family_dir, key)
    enc = ChatEncoding(processor)
    ours = enc.prompt_batch([image()], [PROMPT])["input_ids"][0].tolist()
    assert ours == reference_prompt_ids(processor)
    tokens = processor.tokenizer.convert_ids_to_tokens(ours)
    bos = EXPECT[key]["bos"]
    if bos is None:
        assert processor.tokenizer.bos_token not in tokens or processor.tokenizer.bos_token is None
    else:
        assert tokens.count(bos) == 1
        first_text = next(t for t in tokens if t != processor.image_token)
        assert first_text == bos  # BOS before the text (PaliGemma: right after its image tokens)
    assert ours.count(enc.image_token_id) == EXPECT[key]["image_tokens"]


@pytest.mark.parametrize("key", sorted(EXPECT))
def test_completion_is_the_emitted_text_then_the_end_of_turn(family_dir, key):
    processor = load(family_dir, key)
    enc = ChatEncoding(processor)
    tok = processor.tokenizer
    ids = enc.completion_ids(PROMPT, TEXT)
    assert ids == expected_completion(processor, key)
    assert tok.convert_ids_to_tokens(ids[-1]) == EXPECT[key]["eot"]
    assert tok.decode(ids[-2:-1]).strip()  # no template whitespace dangles before the end of turn
    assert tok.decode(ids[:-1]).strip() == TEXT
    assert enc.completion_ids(PROMPT, f"  {TEXT}\n") == ids  # as generation's stripped text
    assert enc.end_of_turn_id in enc.stop_token_ids(load_generation_config(family_dir(key)))


def load_generation_config(path: str):
    from transformers import GenerationConfig

    return GenerationConfig.from_pretrained(path)


@pytest.mark.parametrize("key", sorted(EXPECT))
def test_training_rows_are_prompt_then_completion(family_dir, key):
    from clipdpo_cli.train.data import VisionPairCollator

    processor = load(family_dir, key)
    rows = [
        {"image": image(), "prompt": PROMPT, "chosen": TEXT, "rejected": "A blue box."},
        {"image": Image.new("RGB", (40, 40)), "prompt": "What is shown?", "chosen": "Two cats.",
         "rejected": "A dog sitting on a green lawn."},
    ]  # fmt: skip
    collator = VisionPairCollator(processor)
    batch = collator(rows)
    assert batch["input_ids"].shape[0] == 4
    prompt, chosen = collator.encoding.split_rows(batch, 0)
    _, rejected = collator.encoding.split_rows(batch, 2)
    assert prompt == reference_prompt_ids(processor)
    assert chosen == expected_completion(processor, key)
    assert rejected == collator.encoding.completion_ids(PROMPT, "A blue box.")
    for row in range(4):  # flushed left: every row starts at column 0, completions follow the prompt
        live = batch["attention_mask"][row]
        assert live[0] == 1 and live.tolist() == sorted(live.tolist(), reverse=True)
        comp = batch["completion_mask"][row]
        assert int(comp.sum()) > 1 and int(live[comp.bool()].min()) == 1


def test_llava15_trains_with_bos_and_eos_where_trl_alone_drops_them(family_dir):
    """The defect this encoding fixes: TRL's collator on LLaVA-1.5 gives no <s>, a stray ▁, no </s>."""
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    from clipdpo_cli.train.data import VisionPairCollator

    processor = load(family_dir, "llava15")
    tok = processor.tokenizer
    ours = VisionPairCollator(processor)
    batch = ours([{"image": image(), "prompt": PROMPT, "chosen": TEXT, "rejected": "A blue box."}])
    prompt, chosen = ours.encoding.split_rows(batch, 0)
    assert tok.convert_ids_to_tokens(prompt[:2]) == ["<s>", "▁USER"]
    assert tok.convert_ids_to_tokens(chosen[-2:]) == ["▁table.", "</s>"]

    trl_batch = DataCollatorForVisionPreference(processor)(
        [{
            "images": [image()],
            "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}],
            "chosen": [{"role": "assistant", "content": [{"type": "text", "text": TEXT}]}],
            "rejected": [{"role": "assistant", "content": [{"type": "text", "text": "A blue box."}]}],
        }]
    )  # fmt: skip
    trl_prompt, trl_chosen = ours.encoding.split_rows(trl_batch, 0)
    assert tok.convert_ids_to_tokens(trl_prompt[0]) != "<s>" and len(trl_prompt) == len(prompt) - 1
    assert tok.convert_ids_to_tokens(trl_chosen[-1]) == "▁"  # TRL ends on the template's space


@pytest.mark.parametrize("key", sorted(EXPECT))
def test_dry_run_dumps_the_rows_as_trained(family_dir, key, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    image().save(folder / "a.png")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps({"id": "p0", "image": str(folder / "a.png"), "prompt": PROMPT, "chosen": TEXT,
                    "rejected": "A blue box."}) + "\n"
    )  # fmt: skip
    dump = tmp_path / "encoded.jsonl"
    args = ["train", str(pairs), "--model", family_dir(key), "--dry-run", "--dump-encoded", str(dump)]
    if FAMILIES[key].needs_template:
        template = tmp_path / "template.jinja"
        template.write_text(PALIGEMMA_TEMPLATE)
        args += ["--chat-template", str(template)]
    result = invoke_cli(*args)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["dry_run"] and summary["pairs"] == 1 and summary["encoded"] == 1
    (row,) = [json.loads(line) for line in dump.read_text().splitlines()]
    processor = load(family_dir, key)
    assert row["id"] == "p0"
    assert row["prompt_ids"] == reference_prompt_ids(processor)
    assert row["chosen_ids"] == expected_completion(processor, key)
    assert row["chosen_tokens"][-1] == EXPECT[key]["eot"] == row["rejected_tokens"][-1]
    assert row["chosen_tokens"] == processor.tokenizer.convert_ids_to_tokens(row["chosen_ids"])


def test_max_length_keeps_every_image_token_of_a_dynamic_resolution_image(family_dir):
    """Qwen2-VL: a 640x480 image takes hundreds of tokens; --max-length counts text only."""
    from clipdpo_cli.train.data import VisionPairCollator

    processor = load(family_dir, "qwen2_vl")
    big = Image.new("RGB", (640, 480), (10, 200, 10))
    row = {"image": big, "prompt": PROMPT, "chosen": TEXT, "rejected": "A blue box."}
    full = VisionPairCollator(processor)([row])
    image_id = ChatEncoding(processor).image_token_id
    n_image = int((full["input_ids"][0] == image_id).sum())
    assert n_image == 17 * 23 == 391  # smart resize: round(480 / 28) x round(640 / 28) merged 2x2 patches
    prompt_len = int((full["completion_mask"][0] == 0).sum())
    budget = prompt_len - n_image + 3
    cut = VisionPairCollator(processor, max_text=budget)([row])
    assert int((cut["input_ids"][0] == image_id).sum()) == n_image
    assert int(cut["completion_mask"][0].sum()) == 3 and cut["input_ids"].shape[1] == budget + n_image


def image_token_count(processor, picture: Image.Image) -> int:
    enc = ChatEncoding(processor)
    return int((enc.prompt_batch([picture], [PROMPT])["input_ids"] == enc.image_token_id).sum())


def test_max_pixels_caps_dynamic_resolution_and_is_a_no_op_for_fixed(family_dir, capsys):
    from clipdpo_cli.models.lvlm import load_lvlm_processor

    big = Image.new("RGB", (640, 480))
    capped = image_token_count(load_lvlm_processor(family_dir("qwen2_vl"), max_pixels=200 * 28 * 28), big)
    assert capped <= 200 < image_token_count(load_lvlm_processor(family_dir("qwen2_vl")), big) == 391
    smol = load_lvlm_processor(family_dir("smolvlm"), max_pixels=512 * 512)
    assert image_token_count(smol, big) == 64  # fits one 512 px tile: no split (uncapped: 13 x 64)
    capsys.readouterr()
    load_lvlm_processor(family_dir("llava15"), max_pixels=1000)
    assert "--max-pixels has no effect on CLIPImageProcessor" in capsys.readouterr().err


def test_max_length_that_leaves_no_answer_is_said_once(family_dir, capsys):
    from clipdpo_cli.train.data import VisionPairCollator

    collator = VisionPairCollator(load(family_dir, "llava15"), max_text=5)
    row = {"image": image(), "prompt": PROMPT, "chosen": TEXT, "rejected": "A blue box."}
    for _ in range(2):
        batch = collator([row])
    assert int(batch["completion_mask"].sum()) == 0  # the prompt's text alone is longer than 5 tokens
    err = capsys.readouterr().err
    assert err.count("warning: --max-length 5 leaves 2 of 2 rows of a batch no answer tokens") == 1


def test_dump_options_need_dry_run(tmp_path):
    from tests.conftest import run_text_cli

    result = run_text_cli("train", str(tmp_path / "p.jsonl"), "--model", "m", "--dump-rows", "3")
    assert result.returncode == 2
    assert result.stderr.strip() == "clipdpo train: error: --dump-encoded and --dump-rows go with --dry-run"
