"""Tiny random transformers dual encoders written to a folder, loadable as `transformers:DIR`.

The real classes of the transformers scorer backend (models/hf_scorer.py), shrunken: `kind="clip"` is a
`CLIPModel` with a `CLIPProcessor` (CLIPImageProcessor + CLIPTokenizer, byte-level BPE without merges),
`kind="siglip"` a `SiglipModel` with a `SiglipProcessor` (SiglipImageProcessor + SiglipTokenizer, a small
SentencePiece model trained here on a fixed corpus), `kind="siglip2"` a `Siglip2Model` with a
`Siglip2Processor` (the NaFlex Siglip2ImageProcessor: patches, their mask and the spatial shapes, and a
Siglip2Tokenizer over single characters with byte fallback). Nothing is downloaded.
"""

from __future__ import annotations

import io
import os
from typing import Any

from clipdpo_cli.testing.tokenizer import CORPUS

IMAGE_SIZE = 32
TOWER: dict[str, Any] = {
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
}  # fmt: skip


def _clip_tokenizer() -> Any:
    """CLIPTokenizer over single byte-level characters (no merges): any text encodes."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(token, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=32)


def _siglip_tokenizer(folder: str) -> Any:
    """SiglipTokenizer over a 120-piece SentencePiece model learnt from the fixed corpus."""
    import sentencepiece as spm
    from transformers import SiglipTokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([line for line in CORPUS.splitlines() if line]),
        model_writer=model, vocab_size=120, hard_vocab_limit=False, model_type="unigram",
        character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
    )  # fmt: skip
    path = os.path.join(folder, "spiece.model")
    with open(path, "wb") as fh:
        fh.write(model.getvalue())
    return SiglipTokenizer(vocab_file=path, model_max_length=16)


def _siglip2_tokenizer() -> Any:
    """Siglip2Tokenizer over printable ASCII characters and '▁', other bytes by byte fallback."""
    import string

    from transformers import Siglip2Tokenizer

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for token in ["▁", *string.ascii_lowercase, *string.digits, *string.punctuation]:
        vocab.setdefault(token, len(vocab))
    for byte in range(256):
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    return Siglip2Tokenizer(vocab=vocab, merges=[], model_max_length=16)


def build_tiny_hf_scorer(out_dir: str, *, kind: str = "clip", seed: int = 0) -> str:
    """Write a tiny random CLIPModel, SiglipModel or Siglip2Model and its processor; 'transformers:DIR'."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        Siglip2Config,
        Siglip2ImageProcessor,
        Siglip2Model,
        Siglip2Processor,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
        SiglipProcessor,
    )

    os.makedirs(out_dir, exist_ok=True)
    vision = {**TOWER, "image_size": IMAGE_SIZE, "patch_size": 8}
    torch.manual_seed(seed)
    if kind == "clip":
        tokenizer = _clip_tokenizer()
        text = {**TOWER, "vocab_size": len(tokenizer), "max_position_embeddings": 32,
                "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}  # fmt: skip
        model: Any = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
        images = CLIPImageProcessor(
            size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
        )
        processor: Any = CLIPProcessor(image_processor=images, tokenizer=tokenizer)
    elif kind == "siglip":
        tokenizer = _siglip_tokenizer(out_dir)
        text = {**TOWER, "vocab_size": len(tokenizer), "max_position_embeddings": 16,
                "bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 0}  # fmt: skip
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
        images = SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
        processor = SiglipProcessor(image_processor=images, tokenizer=tokenizer)
    elif kind == "siglip2":
        tokenizer = _siglip2_tokenizer()
        text = {**TOWER, "vocab_size": len(tokenizer), "max_position_embeddings": 16,
                "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0}  # fmt: skip
        vision2 = {**TOWER, "patch_size": 8, "num_patches": 16}
        model = Siglip2Model(Siglip2Config(text_config=text, vision_config=vision2))
        images2 = Siglip2ImageProcessor(patch_size=8, max_num_patches=16)
        processor = Siglip2Processor(image_processor=images2, tokenizer=tokenizer)
    else:
        raise ValueError(f"unknown kind {kind!r} (clip, siglip or siglip2)")
    with torch.no_grad():  # a random logit scale and bias, so that the parity test sees them
        model.logit_scale.fill_(2.0)
        if hasattr(model, "logit_bias"):
            model.logit_bias.fill_(-1.5)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return f"transformers:{os.path.abspath(out_dir)}"
