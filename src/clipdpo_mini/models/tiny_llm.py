"""Writes a tiny random Llama causal LM with a ChatML chat template to a directory (tests, demo, benchmarks).

It loads like any chat LLM (e.g. teknium/OpenHermes-2.5-Mistral-7B, which uses the same ChatML format):
AutoModelForCausalLM gives a LlamaForCausalLM, AutoTokenizer a byte-level BPE tokenizer whose chat template
renders "<|im_start|>role\\n...<|im_end|>\\n" turns.

With `reply`, the random model is then briefly trained to answer every chat prompt with that text (greedy
decoding reproduces it), e.g. DEMO_REPLY, so `clipdpo ask` has well-formed JSON to parse in demos and tests.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

DEMO_REPLY = json.dumps(
    {
        "questions": [
            {"question": "What color is the main object?", "answer_pos": "red", "answer_neg": "blue"},
            {"question": "How many objects are in the picture?", "answer_pos": "one", "answer_neg": "three"},
        ]
    }
)

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
    reply: str | None = None,
    train_steps: int = 60,
) -> str:
    """Save a random LlamaForCausalLM and its tokenizer (with chat template) to `out_dir`; return the path.

    `reply`: first teach the model to answer any prompt with this text (`train_steps` AdamW steps, a few
    seconds on a CPU).
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from clipdpo_cli.models.hub import quiet_transformers
    from clipdpo_mini.models.tokenizer import build_bpe_tokenizer

    tokenizer = build_bpe_tokenizer(vocab_size, extra_special=("<|im_start|>", "<|im_end|>"))
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
    if reply is not None:
        teach_reply(model, tokenizer, reply, train_steps, seed)
    os.makedirs(out_dir, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


_WORDS = [
    "a", "photo", "of", "the", "dog", "cat", "man", "woman", "child", "red", "blue", "green", "white", "car",
    "street", "sofa", "park", "table", "two", "three", "people", "holding", "sitting", "near", "on", "in",
]  # fmt: skip


def _training_messages(rng: random.Random) -> list[dict[str, str]]:
    """A random chat: half the time an `ask` prompt over 1-5 random captions, else a few random words."""
    from clipdpo_cli.stages.ask import SYSTEM_PROMPT, build_prompt

    def words(lo: int, hi: int) -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(lo, hi)))

    if rng.random() < 0.5:
        captions = [words(3, 25) for _ in range(rng.randint(1, 5))]
        user = build_prompt(captions, rng.randint(1, 3))
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
    return [{"role": "user", "content": words(1, 40)}]


def teach_reply(model: Any, tokenizer: Any, reply: str, steps: int, seed: int = 0, batch: int = 4) -> None:
    """Train `model` in place to answer random chat prompts (with or without a system turn) with `reply`."""
    import torch

    rng = random.Random(seed)
    target = tokenizer.encode(reply, add_special_tokens=False) + [tokenizer.eos_token_id]
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(steps):
        rows = []
        for _ in range(batch):
            messages = _training_messages(rng)
            text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            rows.append(tokenizer.encode(text, add_special_tokens=False))
        length = max(len(r) for r in rows) + len(target)
        ids = torch.full((batch, length), tokenizer.pad_token_id)
        labels = torch.full((batch, length), -100)
        mask = torch.zeros((batch, length), dtype=torch.long)
        for i, row in enumerate(rows):
            start = length - len(row) - len(target)  # left padding, as at generation time
            ids[i, start:] = torch.tensor(row + target)
            mask[i, start:] = 1
            labels[i, start + len(row) :] = torch.tensor(target)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


if __name__ == "__main__":  # python -m clipdpo_mini.models.tiny_llm OUT_DIR [--demo-reply]
    import sys

    if "--demo-reply" in sys.argv[2:]:
        print(build_tiny_llm(sys.argv[1], reply=DEMO_REPLY, num_layers=1))
    else:
        print(build_tiny_llm(sys.argv[1]))
