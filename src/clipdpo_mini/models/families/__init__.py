"""Shrunken checkpoints of the real model families, built offline in seconds, for tests and benchmarks.

Each builder writes a folder that loads through the same code path as the real checkpoint (Auto classes,
`from_pretrained`): the real config class with the published values (depth and width cut), the real
processor and image-processor classes with the published settings, the published chat template (a data
file beside this module, `<key>/chat_template.jinja`, whose `facts.json` names its source), and a
tokenizer of the real class and type with the real special tokens. The vocabularies are small and learnt
from a fixed corpus (the real ones are not ours to ship), so ids differ from the real checkpoints while
every convention (BOS, dummy prefix, byte fallback, end-of-turn tokens) is the real one.

    >>> path = build_family("llava15", "/tmp/llava15")        # doctest: +SKIP
    >>> sorted(FAMILIES)                                      # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clipdpo_mini.models.tokenizer import CORPUS as TINY_CORPUS

HERE = os.path.dirname(__file__)

CORPUS = TINY_CORPUS + """
Describe this image in detail. What is in the picture? How many people are there?
Describe the image. Provide a one-sentence caption for the provided image.
A red ball, a blue box and a green kite. A yellow cup on a table.
You are a helpful assistant. Answer the question using a single word or phrase.
USER: ASSISTANT: User: Assistant: system user assistant model [INST] [/INST] caption en
"""


@dataclass(frozen=True)
class Family:
    """One model family: the Hub id it stands for, what it is, and its builder."""

    key: str
    repo: str
    kind: str  # "lvlm" (AutoModelForImageTextToText) or "llm" (AutoModelForCausalLM)
    build: Callable[[str], str]
    needs_template: bool = False  # the real checkpoint has no chat template (pass --chat-template)


def data_path(key: str, name: str) -> str:
    return os.path.join(HERE, key, name)


def chat_template(key: str) -> str:
    with open(data_path(key, "chat_template.jinja"), encoding="utf-8") as fh:
        return fh.read()


def facts(key: str) -> dict[str, Any]:
    with open(data_path(key, "facts.json"), encoding="utf-8") as fh:
        return json.load(fh)


# ---- tokenizers: the real classes, with a small vocabulary learnt offline ----------------------------------


def learn_bpe(
    pre_tokenizer: Any, size: int, alphabet: list[str], normalizer: Any = None
) -> tuple[dict, list]:
    """(vocab, merges) of a BPE learnt on CORPUS with the given pre-tokenizer (ids from 0, no specials)."""
    from tokenizers import Tokenizer, models, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    if normalizer is not None:
        tok.normalizer = normalizer
    trainer = trainers.BpeTrainer(vocab_size=size, initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator([line for line in CORPUS.splitlines() if line], trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def numbered(tokens: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in tokens:
        out.setdefault(t, len(out))
    return out


def sentencepiece_vocab(head: list[str], size: int, prefix: bool) -> tuple[dict, list]:
    """A SentencePiece-style BPE vocabulary (▁ for spaces, <0xNN> byte-fallback pieces after `head`)."""
    from tokenizers import normalizers, pre_tokenizers

    if prefix:  # Llama: a dummy "▁" before the text, pieces never span a space
        pre = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
        learnt, merges = learn_bpe(pre, size, [])
    else:  # Gemma: spaces become ▁ and stay with the following word, no dummy prefix
        norm = normalizers.Replace(" ", "▁")
        pre = pre_tokenizers.Split(pattern="▁", behavior="merged_with_next")
        learnt, merges = learn_bpe(pre, size, [], normalizer=norm)
    pieces = head + [f"<0x{b:02X}>" for b in range(256)] + sorted(learnt, key=learnt.get)
    return numbered(pieces), merges


def byte_level_vocab(head: list[str], size: int, regex: str | None) -> tuple[dict, list]:
    """A GPT-2 style byte-level BPE vocabulary (Qwen2 / Llama-3 regex split when given)."""
    from tokenizers import Regex, pre_tokenizers

    if regex:
        pre = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])  # fmt: skip
    else:
        pre = pre_tokenizers.ByteLevel(add_prefix_space=False)
    learnt, merges = learn_bpe(pre, size, pre_tokenizers.ByteLevel.alphabet())
    return numbered(head + sorted(learnt, key=learnt.get)), merges


def add_specials(tokenizer: Any, tokens: list[str]) -> Any:
    from tokenizers import AddedToken

    tokenizer.add_special_tokens(
        {"additional_special_tokens": [AddedToken(t, special=True, normalized=False) for t in tokens]}
    )
    return tokenizer


def llama2_tokenizer(extra: list[str], size: int = 400, **kwargs: Any) -> Any:
    """LlamaTokenizer(Fast) as Llama-2 / Vicuna / Mistral-v0.x: <unk> 0, <s> 1, </s> 2, byte fallback."""
    from transformers import LlamaTokenizer

    vocab, merges = sentencepiece_vocab(["<unk>", "<s>", "</s>"], size, prefix=True)
    tok = LlamaTokenizer(vocab=vocab, merges=merges, legacy=False, add_bos_token=True, **kwargs)
    return add_specials(tok, extra)


def gemma_tokenizer(extra: list[str], size: int = 400) -> Any:
    """GemmaTokenizer(Fast): <pad> 0, <eos> 1, <bos> 2, <unk> 3, no dummy prefix, byte fallback."""
    from transformers import GemmaTokenizer

    head = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    vocab, merges = sentencepiece_vocab(head, size, prefix=False)
    return add_specials(GemmaTokenizer(vocab=vocab, merges=merges, add_bos_token=True), extra)


QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
    r"\s+(?!\S)|\s+"
)
QWEN2_SPECIALS = [
    "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip


def qwen2_tokenizer(eos: str = "<|im_end|>", size: int = 500) -> Any:
    """Qwen2Tokenizer(Fast): byte-level BPE, no BOS, <|endoftext|> pad, the Qwen2 markers as specials."""
    from transformers import Qwen2Tokenizer

    vocab, merges = byte_level_vocab([], size, QWEN2_REGEX)
    vocab = {"<|endoftext|>": 0, **{k: v + 1 for k, v in vocab.items()}}
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, eos_token=eos, pad_token="<|endoftext|>")
    return add_specials(tok, QWEN2_SPECIALS)


def smollm_tokenizer(size: int = 500) -> Any:
    """GPT2Tokenizer(Fast) as SmolLM2's: <|endoftext|> 0, <|im_start|> 1, <|im_end|> 2, byte-level BPE."""
    from transformers import GPT2Tokenizer

    vocab, merges = byte_level_vocab(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], size, None)
    tok = GPT2Tokenizer(
        vocab=vocab, merges=merges, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )  # fmt: skip
    rows = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    add_specials(tok, ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"])
    tok.add_tokens(rows)
    return tok


# ---- checkpoints -----------------------------------------------------------------------------------------


def tiny_text(config_cls: Any, tokenizer: Any, **overrides: Any) -> Any:
    """A language-model config cut to 2 layers of width 64, with the tokenizer's special ids."""
    values = dict(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    values.update(overrides)
    return config_cls(**values)


def special_ids(tok: Any) -> dict[str, Any]:
    return {
        "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id
    }  # fmt: skip


def save(out_dir: str, model: Any, processor: Any, generation: dict[str, Any]) -> str:
    from transformers import GenerationConfig

    from clipdpo_cli.models.hub import quiet_transformers

    model.generation_config = GenerationConfig(**generation)
    os.makedirs(out_dir, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


OPENAI_CLIP_NORM = {
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]
}  # fmt: skip
LLAVA_NEXT_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]


def build_llava(out_dir: str, key: str) -> str:
    """LLaVA on a CLIP ViT-L/14-336 tower with the Llama-2 tokenizer.

    llava15 (llava-hf/llava-1.5-7b-hf): one 336 px image, 576 tokens, Vicuna (Llama) with "USER: ...
    ASSISTANT:". llava_next (llava-hf/llava-v1.6-mistral-7b-hf): LLaVA-NeXT "anyres" 336 px tiles on the
    published grid pinpoints, Mistral with "[INST] ... [/INST]".
    """
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForImageTextToText,
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
        LlavaProcessor,
        MistralConfig,
    )

    nxt = key == "llava_next"
    tok = llama2_tokenizer(["<image>"], pad_token="<pad>")
    tok.add_special_tokens({"pad_token": "<pad>"})
    if nxt:
        text = tiny_text(MistralConfig, tok, rms_norm_eps=1e-5, rope_theta=1000000.0, sliding_window=None)
    else:
        text = tiny_text(LlamaConfig, tok, rms_norm_eps=1e-5)
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=336,
        patch_size=14, projection_dim=32,
    )  # fmt: skip
    grid = {"image_grid_pinpoints": LLAVA_NEXT_PINPOINTS} if nxt else {}
    config = AutoConfig.for_model(
        key.replace("llava15", "llava"), vision_config=vision, text_config=text,
        image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-2,
        vision_feature_select_strategy="default", projector_hidden_act="gelu", image_seq_length=576,
        tie_word_embeddings=False, **grid,
    )  # fmt: skip
    images = (LlavaNextImageProcessor if nxt else CLIPImageProcessor)(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}, resample=3, **OPENAI_CLIP_NORM,
        **grid,
    )  # fmt: skip
    processor = (LlavaNextProcessor if nxt else LlavaProcessor)(
        image_processor=images, tokenizer=tok, patch_size=14, vision_feature_select_strategy="default",
        chat_template=chat_template(key), num_additional_image_tokens=1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(config)
    return save(out_dir, model, processor, special_ids(tok))


def build_qwen_vl(out_dir: str, key: str) -> str:
    """Qwen/Qwen2-VL-2B-Instruct or Qwen/Qwen2.5-VL-3B-Instruct: dynamic resolution, ChatML, mRoPE."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, Qwen2VLImageProcessor

    tok = qwen2_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN2_SPECIALS}
    text = dict(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
        max_position_embeddings=32768, tie_word_embeddings=True,
        rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"), eos_token_id=ids["<|im_end|>"],
        pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    if key == "qwen2_vl":
        from transformers import Qwen2VLProcessor as Processor

        vision = {"depth": 1, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2}
    else:
        from transformers import Qwen2_5_VLProcessor as Processor

        vision = {
            "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
            "window_size": 112, "fullatt_block_indexes": [1],
        }  # fmt: skip
    vision.update(patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    config = AutoConfig.for_model(
        key, text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True,
    )  # fmt: skip
    images = Qwen2VLImageProcessor(
        min_pixels=3136, max_pixels=12845056, patch_size=14, temporal_patch_size=2, merge_size=2,
        **OPENAI_CLIP_NORM,
    )  # fmt: skip
    from transformers import Qwen2VLVideoProcessor

    processor = Processor(
        image_processor=images, tokenizer=tok, video_processor=Qwen2VLVideoProcessor(),
        chat_template=chat_template(key),
    )  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(config)
    eos = [ids["<|im_end|>"], tok.convert_tokens_to_ids("<|endoftext|>")]
    gen = {"bos_token_id": eos[1], "pad_token_id": eos[1], "eos_token_id": eos}
    return save(out_dir, model, processor, gen)


def build_smolvlm(out_dir: str) -> str:
    """HuggingFaceTB/SmolVLM-256M-Instruct (Idefics3): 512 px tiles, 64 tokens a tile, SmolLM2 tokenizer."""
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
        Idefics3VisionConfig,
        LlamaConfig,
    )

    tok = smollm_tokenizer()
    eou = tok.convert_tokens_to_ids("<end_of_utterance>")
    text = tiny_text(LlamaConfig, tok, head_dim=16, rms_norm_eps=1e-5, max_position_embeddings=8192)
    vision = Idefics3VisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=512,
        patch_size=16,
    )  # fmt: skip
    config = Idefics3Config(
        vision_config=vision.to_dict(), text_config=text.to_dict(), scale_factor=4,
        image_token_id=tok.convert_tokens_to_ids("<image>"), pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    images = Idefics3ImageProcessor(
        do_image_splitting=True, max_image_size={"longest_edge": 512}, size={"longest_edge": 2048},
        resample=1, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )  # fmt: skip
    processor = Idefics3Processor(
        image_processor=images, tokenizer=tok, image_seq_len=64, chat_template=chat_template("smolvlm")
    )
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config)
    gen = {"bos_token_id": tok.bos_token_id, "eos_token_id": eou, "pad_token_id": tok.pad_token_id}
    return save(out_dir, model, processor, gen)


# PaliGemma has no chat template: the one the project documents for it is a data file (the prompt is the
# user's text; the processor itself puts the 256 image tokens and <bos> in front and "\n" after it).
PALIGEMMA_TEMPLATE_FILE = data_path("paligemma", "recommended_chat_template.jinja")
with open(PALIGEMMA_TEMPLATE_FILE, encoding="utf-8") as _fh:
    PALIGEMMA_TEMPLATE = _fh.read()


def build_paligemma(out_dir: str) -> str:
    """google/paligemma-3b-mix-224: SigLIP-So400m/14 at 224 (256 image tokens), Gemma; no chat template."""
    import torch
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessor,
        SiglipVisionConfig,
    )

    tok = gemma_tokenizer(["<image>"])
    text = tiny_text(GemmaConfig, tok, head_dim=16, num_key_value_heads=1, num_image_tokens=256)
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=224,
        patch_size=14, num_image_tokens=256, projection_dim=64, vision_use_head=False,
    )  # fmt: skip
    config = PaliGemmaConfig(
        vision_config=vision.to_dict(), text_config=text.to_dict(), projection_dim=64,
        image_token_index=tok.convert_tokens_to_ids("<image>"), hidden_size=64,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    images = SiglipImageProcessor(
        size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3, resample=3
    )
    images.image_seq_length = 256
    processor = PaliGemmaProcessor(image_processor=images, tokenizer=tok)
    torch.manual_seed(0)
    model = PaliGemmaForConditionalGeneration(config)
    return save(out_dir, model, processor, special_ids(tok))


FAMILIES: dict[str, Family] = {
    f.key: f
    for f in (
        Family("llava15", "llava-hf/llava-1.5-7b-hf", "lvlm", lambda d: build_llava(d, "llava15")),
        Family("llava_next", "llava-hf/llava-v1.6-mistral-7b-hf", "lvlm", lambda d: build_llava(d, "llava_next")),  # noqa: E501
        Family("qwen2_vl", "Qwen/Qwen2-VL-2B-Instruct", "lvlm", lambda d: build_qwen_vl(d, "qwen2_vl")),
        Family("qwen2_5_vl", "Qwen/Qwen2.5-VL-3B-Instruct", "lvlm", lambda d: build_qwen_vl(d, "qwen2_5_vl")),
        Family("smolvlm", "HuggingFaceTB/SmolVLM-256M-Instruct", "lvlm", build_smolvlm),
        Family("paligemma", "google/paligemma-3b-mix-224", "lvlm", build_paligemma, needs_template=True),
        Family("mobilevlm_v2", "mtgv/MobileVLM_V2-1.7B", "lvlm", lambda d: build_mobilevlm(d)),
    )
}


def build_mobilevlm(out_dir: str, **kwargs: Any) -> str:
    """mtgv/MobileVLM_V2-1.7B in the official layout (models/families/mobilevlm.py)."""
    from clipdpo_mini.models.families.mobilevlm import build_mobilevlm as build

    return build(out_dir, **kwargs)


def all_families() -> dict[str, Family]:
    """The vision-language families (FAMILIES) and the text LLMs for `ask` (text.TEXT_FAMILIES)."""
    from clipdpo_mini.models.families.text import TEXT_FAMILIES

    return {**FAMILIES, **TEXT_FAMILIES}


def build_family(key: str, out_dir: str) -> str:
    """Write the shrunken checkpoint of family `key` (an LVLM or a text LLM) to `out_dir`; return the path."""
    known = all_families()
    if key not in known:
        raise KeyError(f"unknown family '{key}' (known: {', '.join(sorted(known))})")
    return known[key].build(out_dir)
