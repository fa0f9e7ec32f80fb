"""Writes a tiny random Llama causal LM with a ChatML chat template to a directory (tests, demo, benchmarks).

It loads like any chat LLM (e.g. teknium/OpenHermes-2.5-Mistral-7B, which uses the same ChatML format):
AutoModelForCausalLM gives a LlamaForCausalLM, AutoTokenizer a byte-level BPE tokenizer whose chat template
renders "<|im_start|>role\\n...<|im_end|>\\n" turns.
"""

from __future__ import annotations

import os

CHATML_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tiny_llm(
    out_dir: str,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    vocab_size: int = 512,
    seed: int = 0,
) -> str:
    """Save a random LlamaForCausalLM and its tokenizer (with chat template) to `out_dir`; return the path."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from clipdpo_cli.models.hub import quiet_transformers
    from clipdpo_cli.testing.tokenizer import build_bpe_tokenizer

    tokenizer = build_bpe_tokenizer(vocab_size, extra_special=("<|im_start|>", "<|im_end|>"))
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.chat_template = CHATML_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    os.makedirs(out_dir, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
