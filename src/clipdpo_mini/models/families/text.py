"""Shrunken checkpoints of the real text chat LLMs `clipdpo ask` is used with, built offline in seconds.

As the vision-language builders in `clipdpo_mini.models.families`: each folder loads with AutoTokenizer and
AutoModelForCausalLM exactly as the real checkpoint does, into the real model, config and tokenizer classes,
with the published chat template (`<key>/chat_template.jinja`, its source in `<key>/facts.json`), the real
special tokens and BOS convention, and a generation config with the published EOS ids mapped to the small
vocabulary's ids. Width and depth are cut (hidden 64, 2 layers); every other config value is the published
one where `facts.json` has it. Where it has none, the value used is named in the builder's comments.

    >>> path = TEXT_FAMILIES["llama31_instruct"].build("/tmp/llama31")   # doctest: +SKIP
    >>> sorted(TEXT_FAMILIES)                                            # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from typing import Any

from clipdpo_mini.models.families import (
    Family,
    byte_level_vocab,
    chat_template,
    facts,
    gemma_tokenizer,
    llama2_tokenizer,
    qwen2_tokenizer,
    save,
    special_ids,
    tiny_text,
)

# Llama-3's pre-tokenizer split (tokenizer.json: Split(Regex, Isolated) then ByteLevel without its own regex).
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
    r"\s+(?!\S)|\s+"
)
# Llama-3.1's 256 added tokens (ids 128000-128255 in the real vocabulary), in their published order.
LLAMA3_SPECIALS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eom_id|>", "<|eot_id|>", "<|python_tag|>", *(f"<|reserved_special_token_{i}|>" for i in range(3, 248)),
]  # fmt: skip
# Qwen2.5's added tokens after Qwen2's markers (151657-151664); added as plain (non-special) tokens.
QWEN25_EXTRA = [
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",
]  # fmt: skip


def with_template(tokenizer: Any, key: str) -> Any:
    tokenizer.chat_template = chat_template(key)
    return tokenizer


def random_causal_lm(config: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config)


def llama3_tokenizer(size: int = 500) -> Any:
    """PreTrainedTokenizerFast as Llama-3.1's: byte-level BPE (ignore_merges), the 256 specials after the
    learnt vocabulary, and BOS added by the tokenizer.json post-processor (no add_bos_token flag)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab, merges = byte_level_vocab([], size, LLAMA3_REGEX)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])  # fmt: skip
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in LLAMA3_SPECIALS])
    bos = "<|begin_of_text|>"
    template = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos}:1 $B:1", special_tokens=[(bos, backend.token_to_id(bos))]
    )
    backend.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=bos, eos_token="<|eot_id|>", clean_up_tokenization_spaces=True,
        model_max_length=131072, model_input_names=["input_ids", "attention_mask"],
    )  # fmt: skip


def mistral_config(tok: Any, **published: Any) -> Any:
    from transformers import MistralConfig

    # Mistral-7B's layout (not in facts.json): RMSNorm 1e-5, 32k positions, untied embeddings
    return tiny_text(
        MistralConfig, tok, num_key_value_heads=1, rms_norm_eps=1e-5, max_position_embeddings=32768,
        tie_word_embeddings=False, hidden_act="silu", **published,
    )  # fmt: skip


def build_openhermes(out_dir: str) -> str:
    """teknium/OpenHermes-2.5-Mistral-7B: Mistral-7B-v0.1 fine-tuned on ChatML; eos <|im_end|>."""
    tok = llama2_tokenizer(["<|im_end|>", "<|im_start|>"])  # added after the base vocabulary, in this order
    tok.eos_token = "<|im_end|>"
    with_template(tok, "openhermes")
    # Mistral-7B-v0.1's rope theta and 4096-token sliding window (facts.json has no config)
    config = mistral_config(tok, rope_theta=10000.0, sliding_window=4096)
    return save(out_dir, random_causal_lm(config), tok, special_ids(tok))


def build_mistral_instruct(out_dir: str) -> str:
    """mistralai/Mistral-7B-Instruct-v0.2: Llama-2 style tokenizer, [INST] template, turns end with </s>."""
    tok = with_template(llama2_tokenizer([]), "mistral_instruct")  # <unk> 0, <s> 1, </s> 2 as published
    # v0.2: rope theta 1e6, no sliding window (facts.json has no config)
    config = mistral_config(tok, rope_theta=1000000.0, sliding_window=None)
    return save(out_dir, random_causal_lm(config), tok, special_ids(tok))


def build_llama31_instruct(out_dir: str) -> str:
    """meta-llama/Llama-3.1-8B-Instruct: tiktoken-style BPE, header tokens, llama3 RoPE scaling."""
    from transformers import LlamaConfig

    published = facts("llama31_instruct")
    real = published["config"]
    tok = with_template(llama3_tokenizer(), "llama31_instruct")
    ids = {t: tok.convert_tokens_to_ids(t) for t in published["tokenizer"]["special_tokens"]}
    real_ids = {v: k for k, v in published["tokenizer"]["special_tokens"].items()}
    eos = [ids[real_ids[i]] for i in real["eos_token_id"]]  # [<|end_of_text|>, <|eom_id|>, <|eot_id|>]
    keep = (
        "rms_norm_eps", "rope_theta", "rope_scaling", "max_position_embeddings", "tie_word_embeddings",
        "attention_bias", "mlp_bias", "hidden_act", "pretraining_tp",
    )  # fmt: skip
    config = tiny_text(
        LlamaConfig, tok, num_attention_heads=4, num_key_value_heads=1, eos_token_id=eos,
        **{k: real[k] for k in keep},
    )  # fmt: skip
    gen = {k: v for k, v in published["generation_config"].items() if k != "transformers_version"}
    gen.update(bos_token_id=tok.bos_token_id, eos_token_id=eos)
    save(out_dir, random_causal_lm(config), tok, gen)
    # transformers 5 writes its own name for the class; the checkpoint names the one Meta's file does
    set_tokenizer_class(out_dir, published["tokenizer"]["class"])
    return out_dir


def set_tokenizer_class(out_dir: str, name: str) -> None:
    path = os.path.join(out_dir, "tokenizer_config.json")
    with open(path, encoding="utf-8") as fh:
        values = json.load(fh)
    values["tokenizer_class"] = name
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(values, fh, indent=2, ensure_ascii=False)
        fh.write("\n")


def build_qwen25_instruct(out_dir: str) -> str:
    """Qwen/Qwen2.5-7B-Instruct: byte-level BPE without BOS, ChatML with a default system turn."""
    from transformers import Qwen2Config

    real = facts("qwen25_instruct")["config"]
    tok = qwen2_tokenizer()
    tok.add_tokens(QWEN25_EXTRA)
    with_template(tok, "qwen25_instruct")
    endoftext = tok.convert_tokens_to_ids("<|endoftext|>")
    keep = ("rms_norm_eps", "rope_theta", "tie_word_embeddings", "use_sliding_window", "hidden_act")
    config = tiny_text(
        Qwen2Config, tok, num_attention_heads=4, num_key_value_heads=1, max_window_layers=2,
        max_position_embeddings=32768, bos_token_id=endoftext, **{k: real[k] for k in keep},
    )  # fmt: skip
    # eos [<|im_end|>, <|endoftext|>], bos = pad = <|endoftext|>, as the Qwen2(-VL) instruct checkpoints ship
    # (facts.json has no generation_config; its sampling defaults are left out)
    eos = [tok.eos_token_id, endoftext]
    gen = {"bos_token_id": endoftext, "pad_token_id": endoftext, "eos_token_id": eos}
    return save(out_dir, random_causal_lm(config), tok, gen)


def build_gemma2_it(out_dir: str) -> str:
    """google/gemma-2-2b-it: Gemma's SentencePiece vocabulary, <start_of_turn>/<end_of_turn>, softcapping."""
    from transformers import Gemma2Config

    tok = with_template(gemma_tokenizer(["<start_of_turn>", "<end_of_turn>"]), "gemma2_it")
    eot = tok.convert_tokens_to_ids("<end_of_turn>")
    # Gemma-2-2b's published values (not in facts.json; they are also Gemma2Config's defaults): attention and
    # final logit softcapping 50 / 30, query scale 256, 4096-token sliding window on every other layer,
    # tanh-GELU, RMSNorm 1e-6, 8k positions, tied embeddings; eos ids [<eos>, <end_of_turn>]
    config = tiny_text(
        Gemma2Config, tok, head_dim=16, num_attention_heads=4, num_key_value_heads=2,
        attn_logit_softcapping=50.0, final_logit_softcapping=30.0, query_pre_attn_scalar=256,
        sliding_window=4096, hidden_activation="gelu_pytorch_tanh", rms_norm_eps=1e-6,
        max_position_embeddings=8192, tie_word_embeddings=True, eos_token_id=[tok.eos_token_id, eot],
    )  # fmt: skip
    gen = {**special_ids(tok), "eos_token_id": [tok.eos_token_id, eot]}
    return save(out_dir, random_causal_lm(config), tok, gen)


TEXT_FAMILIES: dict[str, Family] = {
    f.key: f
    for f in (
        Family("openhermes", "teknium/OpenHermes-2.5-Mistral-7B", "llm", build_openhermes),
        Family("mistral_instruct", "mistralai/Mistral-7B-Instruct-v0.2", "llm", build_mistral_instruct),
        Family("llama31_instruct", "meta-llama/Llama-3.1-8B-Instruct", "llm", build_llama31_instruct),
        Family("qwen25_instruct", "Qwen/Qwen2.5-7B-Instruct", "llm", build_qwen25_instruct),
        Family("gemma2_it", "google/gemma-2-2b-it", "llm", build_gemma2_it),
    )
}
