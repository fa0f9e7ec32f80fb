"""Writes a tiny random LLaVA (the real transformers classes) to a directory, for tests, demo and benchmarks.

The directory loads exactly like llava-hf/llava-1.5-7b-hf does: AutoModelForImageTextToText gives a
LlavaForConditionalGeneration (CLIP vision tower + Llama language model), AutoProcessor a LlavaProcessor
(CLIPImageProcessor + a byte-level BPE tokenizer with an `<image>` special token) whose chat template follows
LLaVA-1.5's "USER: <image>\\n... ASSISTANT:" format.

    >>> path = build_tiny_llava("/tmp/tiny-llava")            # doctest: +SKIP
    >>> lvlm = load_lvlm(path)                                # doctest: +SKIP
"""

from __future__ import annotations

import os

IMAGE_TOKEN = "<image>"

# LLaVA-1.5's conversation format; images are rendered before the text of a user message.
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% for c in message['content'] if c['type'] == 'text' %}{{ c['text'] + ' ' }}{% endfor %}"
    "{% else %}{{ message['role'].upper() + ': ' }}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}{% else %}"
    "{% for c in message['content'] if c['type'] == 'image' %}{{ '<image>\n' }}{% endfor %}"
    "{% for c in message['content'] if c['type'] == 'text' %}{{ c['text'] + ' ' }}{% endfor %}"
    "{% endif %}{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def build_tiny_llava(
    out_dir: str,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    vision_hidden_size: int = 32,
    vision_layers: int = 2,
    image_size: int = 32,
    patch_size: int = 8,
    vocab_size: int = 512,
    vision_hidden_act: str = "quick_gelu",
    vision_feature_layer: int = -2,
    tokenizer_corpus: str | None = None,
    seed: int = 0,
) -> str:
    """Save a random LlavaForConditionalGeneration and its LlavaProcessor to `out_dir`; return the path.

    The image takes (image_size // patch_size) ** 2 tokens (the CLS feature is dropped, as in LLaVA-1.5).
    The same `seed` and sizes give the same weights. `vision_hidden_act="gelu"` gives the vision tower
    open_clip's activation (the miniature world copies a trained open_clip image tower into it);
    `tokenizer_corpus` replaces the text the tokenizer's merges are learnt from.
    """
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        GenerationConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from clipdpo_cli.models.hub import quiet_transformers
    from clipdpo_mini.models.tokenizer import CORPUS, build_bpe_tokenizer

    if image_size % patch_size:
        raise ValueError(f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})")
    corpus = tokenizer_corpus or CORPUS
    tokenizer = build_bpe_tokenizer(vocab_size, extra_special=(IMAGE_TOKEN,), corpus=corpus)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)

    vision = CLIPVisionConfig(
        hidden_size=vision_hidden_size,
        intermediate_size=vision_hidden_size * 2,
        num_hidden_layers=vision_layers,
        num_attention_heads=max(1, vision_hidden_size // 16),
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=vision_hidden_size,
        hidden_act=vision_hidden_act,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        image_seq_length=(image_size // patch_size) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=vision_feature_layer,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,
    )
    os.makedirs(out_dir, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


if __name__ == "__main__":  # python -m clipdpo_mini.models.tiny_llava OUT_DIR
    import sys

    print(build_tiny_llava(sys.argv[1]))
