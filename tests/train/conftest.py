"""Fixtures for the train tests: one tiny LLaVA per session and a learnable toy preference set of pairs."""

from __future__ import annotations

import json
import os
import sys

import pytest

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "src"))


def _build_tiny_llava(out_dir: str) -> str:
    """The project's tiny LLaVA builder (clipdpo_cli.testing.tiny_llava), or a minimal stand-in until it lands."""
    try:
        from clipdpo_cli.testing.tiny_llava import build_tiny_llava
    except ImportError:
        return _fallback_tiny_llava(out_dir)
    return build_tiny_llava(out_dir)


def _fallback_tiny_llava(out_dir: str) -> str:
    """A random LlavaForConditionalGeneration + LlavaProcessor with a byte-level BPE tokenizer (LLaVA-1.5 chat)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    corpus = ["a photo of a red ball and a blue cube on a table", "describe the image in detail please"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>", "<unk>", "<image>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                        unk_token="<unk>", extra_special_tokens={}, padding_side="left")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    template = (
        "{% for message in messages %}{{ message['role'].upper() + ': ' }}"
        "{% if message['content'] is string %}{{ message['content'] + ' ' }}{% else %}"
        "{% for c in message['content'] if c['type'] == 'image' %}{{ '<image>\n' }}{% endfor %}"
        "{% for c in message['content'] if c['type'] == 'text' %}{{ c['text'] + ' ' }}{% endfor %}{% endif %}"
        "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
    )
    image_size, patch = 16, 8
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=image_size, patch_size=patch),
        text_config=LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                bos_token_id=1, eos_token_id=2, pad_token_id=0),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = 0
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": image_size},
                                           crop_size={"height": image_size, "width": image_size}),
        tokenizer=tokenizer, patch_size=patch, vision_feature_select_strategy="default",
        chat_template=template, image_token="<image>", num_additional_image_tokens=1,
    )
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory) -> str:
    return _build_tiny_llava(str(tmp_path_factory.mktemp("tiny-llava")))


def write_toy_pairs(folder: str, n: int = 8) -> str:
    """A learnable toy preference: per image, 'red' (chosen) beats 'blue' (rejected); images differ by colour."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "pairs.jsonl")
    with open(path, "w") as fh:
        for i in range(n):
            img = os.path.join(folder, f"img{i}.png")
            Image.new("RGB", (20 + i, 18), color=(40 * i % 255, 100, 200 - 10 * i)).save(img)
            fh.write(json.dumps({
                "id": f"p{i}", "image": img, "kind": "caption", "prompt": "Describe the image.",
                "chosen": "a red ball on a table", "rejected": "a blue cube", "margin": 3.0,
            }) + "\n")
    return path


@pytest.fixture(scope="session")
def toy_pairs(tmp_path_factory) -> str:
    return write_toy_pairs(str(tmp_path_factory.mktemp("pairs")))


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str, timeout: int = 300):
    import subprocess

    return subprocess.run([sys.executable, "-m", "clipdpo_cli", *args], capture_output=True, text=True,
                          env=cli_env(), timeout=timeout)
