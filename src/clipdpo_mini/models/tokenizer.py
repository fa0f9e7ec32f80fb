"""A small byte-level BPE tokenizer trained offline, shared by the tiny LLaVA and tiny Llama builders.

Byte-level BPE encodes any text (every byte is in the base alphabet), so prompts, JSON and captions a random
model writes all round-trip. The merges are learnt from a fixed English corpus, so the tokenizer is the same
on every machine.
"""

from __future__ import annotations

from typing import Any

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"

CORPUS = """
a photo of a dog sitting on a green lawn next to a red ball in the afternoon sun
the image shows a woman holding an umbrella while walking down a busy city street
two cats are sleeping on a brown sofa near the window of a small living room
a man riding a bicycle along the road with trees and cars in the background
describe this image in detail. what is in the picture? how many people are there?
the kitchen has white cabinets, a wooden table, and a bowl of fruit on the counter
question answer positive negative yes no color shape size left right top bottom
{"question": "What color is the car?", "answer_pos": "red", "answer_neg": "blue"}
a plate of food with rice, vegetables and chicken on a table in a restaurant
children playing football in a park on a sunny day with clouds in the blue sky
"""


def build_bpe_tokenizer(
    vocab_size: int = 512, extra_special: tuple[str, ...] = (), corpus: str = CORPUS
) -> Any:
    """A transformers PreTrainedTokenizerFast (byte-level BPE) that adds BOS in front of every text.

    `extra_special` tokens (an image token, chat markers) get their own ids and are registered as special.
    `corpus` is the text the merges are learnt from (one text per line).
    """
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok = _train_bpe(vocab_size, [PAD, BOS, EOS, UNK, *extra_special], corpus)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens={},
        padding_side="left",
    )
    if extra_special:  # never split, and skipped when decoding with skip_special_tokens
        fast.add_special_tokens({"additional_special_tokens": list(extra_special)})
    return fast


def _train_bpe(vocab_size: int, specials: list[str], corpus: str) -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` whose merges are learnt from `corpus`; specials get ids 0.."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([line for line in corpus.splitlines() if line], trainer=trainer)
    return tok


CLIP_BOS, CLIP_EOS = "<start_of_text>", "<end_of_text>"


def build_clip_tokenizer(vocab_size: int = 512, corpus: str = CORPUS) -> Any:
    """A small byte-level BPE tokenizer for an open_clip text tower (`hf_tokenizer_name` in text_cfg).

    It follows open_clip's own tokenizer conventions, so the default text pooling works unchanged: padding
    is id 0 on the right, every text is `<start_of_text> ... <end_of_text>`, and `<end_of_text>` has the
    highest id (open_clip's 'argmax' pooling takes the feature at the highest token id). Save it with
    `save_pretrained(DIR)` next to the checkpoint: open_clip loads a `local-dir:` model's HF tokenizer
    from that folder.
    """
    from tokenizers import AddedToken, processors
    from transformers import PreTrainedTokenizerFast

    tok = _train_bpe(vocab_size, [PAD, UNK], corpus)
    tok.add_special_tokens([AddedToken(CLIP_BOS, special=True), AddedToken(CLIP_EOS, special=True)])
    bos, eos = tok.token_to_id(CLIP_BOS), tok.token_to_id(CLIP_EOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{CLIP_BOS} $A {CLIP_EOS}", pair=f"{CLIP_BOS} $A {CLIP_EOS} $B {CLIP_EOS}",
        special_tokens=[(CLIP_BOS, bos), (CLIP_EOS, eos)],
    )  # fmt: skip
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=CLIP_BOS, eos_token=CLIP_EOS, pad_token=PAD, unk_token=UNK,
        extra_special_tokens={}, padding_side="right",
    )  # fmt: skip
