"""Loading an image-text-to-text model (LVLM) and running it in batches: generation, next-token probabilities.

Any transformers model that AutoModelForImageTextToText and AutoProcessor load works (LLaVA-1.5, Qwen2-VL,
SmolVLM, ... by Hub id or local directory). Prompts are encoded by models.conversation.ChatEncoding (the
same encoding training uses) with one image per prompt; batches are left-padded so every row ends where
generation starts, and generation stops at the model's end-of-turn token.

    >>> lvlm = load_lvlm("llava-hf/llava-1.5-7b-hf", device="cuda", dtype="bf16")       # doctest: +SKIP
    >>> lvlm.generate([img1, img2], ["Describe the image.", "What is shown?"], seed=[1, 2])  # doctest: +SKIP
    >>> lvlm.next_token_probs([img1], ["Is there a dog? Answer yes or no."])           # doctest: +SKIP
    [{'Yes': 0.81, 'No': 0.12}]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.io.log import note
from clipdpo_cli.models.conversation import ChatEncoding
from clipdpo_cli.models.hub import (
    load_frozen,
    load_pretrained,
    model_dtype,
    pad_left,
    resolve_name,
    use_chat_template,
)
from clipdpo_cli.models.sampling import check_sampling, generate_texts


def candidate_token_ids(tokenizer: Any, candidate: str) -> list[int]:
    """Token ids that start `candidate` as the first word of an answer ("Yes" and, when one token, " Yes")."""
    ids: list[int] = []
    for variant in (candidate, " " + candidate):
        encoded = tokenizer.encode(variant, add_special_tokens=False)
        if encoded and (variant == candidate or len(encoded) == 1) and encoded[0] not in ids:
            ids.append(encoded[0])
    if not ids:
        raise ValueError(f"candidate {candidate!r} encodes to no token")
    return ids


@dataclass
class Lvlm:
    """A loaded LVLM: the transformers model, its processor, and the name it was loaded by."""

    model: Any
    processor: Any
    name: str

    encoding: ChatEncoding = field(init=False, repr=False)
    fused: bool = field(default=False, init=False, repr=False)  # TRL's fused LM head added (text_logprobs)

    def __post_init__(self) -> None:
        self.encoding = ChatEncoding(self.processor)

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    @property
    def device(self) -> Any:
        return self.model.device

    def inputs(self, images: Sequence[Any], prompts: Sequence[str]) -> Any:
        """Chat-templated, left-padded model inputs for one image and one prompt per row, on the device."""
        batch = self.encoding.prompt_batch(images, prompts)
        dtype = self.model.dtype
        return {
            k: (v.to(self.device, dtype=dtype) if v.is_floating_point() else v.to(self.device))
            for k, v in batch.items()
        }

    def generate(
        self,
        images: Sequence[Any],
        prompts: Sequence[str],
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | Sequence[int] | None = None,
    ) -> list[str]:
        """One continuation per (image, prompt) row. temperature 0 is greedy.

        `seed`: a list gives each row its own seed (a row's text then does not depend on its batch); an int
        seeds row i with seed + i; None draws fresh seeds.
        """
        check_sampling(temperature, top_p, max_new_tokens)
        if not prompts:
            return []
        batch = self.inputs(images, prompts)
        stop = self.encoding.stop_token_ids(self.model.generation_config)
        return generate_texts(
            self.model, self.tokenizer, batch, max_new_tokens, temperature, top_p, seed, stop_ids=stop
        )

    def text_logprobs(
        self, images: Sequence[Any], prompts: Sequence[str], texts: Sequence[str]
    ) -> list[tuple[float, int]]:
        """Per row: (sum of log p(token), number of tokens) of `text` given the image and prompt.

        The text is encoded as training encodes a completion (models/conversation.py): the tokens the model
        would emit for it after the generation prompt. The end-of-turn token is not counted: this is the
        likelihood of the words, not of stopping after them. The log-probs come from the code the trainer
        and the reference pass use (models/logps.py, TRL's fused LM head: no full-vocabulary logits).
        """
        import torch

        from clipdpo_cli.io.extras import require

        require("trl", "--scorer lvlm")  # TRL's fused LM head, as training computes log-probs
        from trl.trainer.utils import add_fused_lm_head

        from clipdpo_cli.models.logps import completion_logps

        batch = self.encoding.prompt_batch(images, prompts)
        ids = [self.encoding.completion_ids(p, t)[:-1] for p, t in zip(prompts, texts, strict=True)]
        if any(not row for row in ids):
            raise ValueError("an empty text has no tokens to score")
        joined = self.encoding.join(batch, ids)
        if not self.fused:  # generation is unchanged: the fused path runs only when asked for
            add_fused_lm_head(self.model)
            self.fused = True
        dtype = self.model.dtype
        inputs = {
            k: (v.to(self.device, dtype=dtype) if v.is_floating_point() else v.to(self.device))
            for k, v in joined.items()
        }
        with torch.inference_mode():
            sums = completion_logps(self.model, inputs).float().cpu().tolist()
        counts = joined["completion_mask"].sum(dim=1).tolist()
        return [(float(s), int(n)) for s, n in zip(sums, counts, strict=True)]

    def next_token_probs(
        self, images: Sequence[Any], prompts: Sequence[str], candidates: Sequence[str] = ("Yes", "No")
    ) -> list[dict[str, float]]:
        """Per row, the probability (softmax over the vocabulary) that the answer starts with each candidate.

        A candidate's probability sums its first token with and without a leading space, when the spaced form
        is one token too. The values are not renormalised over the candidates.
        """
        import torch

        if not prompts:
            return []
        token_ids = {c: candidate_token_ids(self.tokenizer, c) for c in candidates}
        batch = self.inputs(images, prompts)
        with torch.inference_mode():
            logits = self.model(**batch).logits[:, -1, :]
        probs = torch.softmax(logits.float(), dim=-1).cpu()
        return [{c: float(row[ids].sum()) for c, ids in token_ids.items()} for row in probs]


def cap_pixels(processor: Any, max_pixels: int | None) -> bool:
    """Cap a dynamic-resolution image processor at `max_pixels` per image; False if it has a fixed size.

    Qwen2-VL / Qwen2.5-VL (and other `max_pixels` processors): the budget their smart resize keeps to.
    Idefics3 / SmolVLM: the longest edge the image is resized to before tiling, so that the square of that
    edge fits the budget (at least one tile).
    """
    import math

    if max_pixels is None:
        return True
    if max_pixels < 1:
        raise UsageError(f"--max-pixels must be at least 1, got {max_pixels}")
    images = getattr(processor, "image_processor", None)
    size = getattr(images, "size", None)
    if images is None or size is None:
        return False
    values = dict(size)  # a dict, or transformers' SizeDict (which iterates as its set items)

    def with_edge(edge: int) -> Any:
        return type(size)(**{**values, "longest_edge": edge})

    if getattr(images, "merge_size", None) and "shortest_edge" in values:  # Qwen2-VL: pixel budget
        images.size = with_edge(max_pixels)
        if hasattr(images, "max_pixels"):
            images.max_pixels = max_pixels
        return True
    tile = (getattr(images, "max_image_size", None) or {}).get("longest_edge")
    if tile and "longest_edge" in values:  # Idefics3 / SmolVLM: the edge the image is tiled at
        edge = max(tile, math.isqrt(max_pixels) // tile * tile)
        images.size = with_edge(min(edge, values["longest_edge"]))
        return True
    return False


def load_lvlm_processor(
    name_or_dir: str, chat_template: str | None = None, max_pixels: int | None = None, why: str = ""
) -> Any:
    """An LVLM's processor (AutoProcessor) with a chat template, capped at `max_pixels` where it can be."""

    from transformers import AutoProcessor, ProcessorMixin

    path = resolve_name(name_or_dir, "model")
    processor = load_pretrained(AutoProcessor.from_pretrained, path, "model")
    if not isinstance(processor, ProcessorMixin) or not hasattr(processor, "tokenizer"):
        raise InputError(
            f"model '{name_or_dir}' has no image-text processor (AutoProcessor gave "
            f"{type(processor).__name__}); is it an image-text-to-text model?"
        )
    use_chat_template(processor, name_or_dir, chat_template, why)
    if not cap_pixels(processor, max_pixels):
        name = type(processor.image_processor).__name__
        note("", f"--max-pixels has no effect on {name} (fixed resolution)")
    return processor


def load_lvlm(
    name_or_dir: str,
    device: str | Any = "auto",
    dtype: str = "auto",
    chat_template: str | None = None,
    max_pixels: int | None = None,
) -> Lvlm:
    """Load an LVLM by Hub id or local directory with AutoModelForImageTextToText and AutoProcessor.

    `dtype`: 'auto' (bf16 on a GPU with bf16, fp16 on other GPUs, fp32 on CPU), 'fp32', 'bf16' or 'fp16'.
    `chat_template`: a Jinja template (text or file) for models whose processor has none.
    `max_pixels`: cap on the pixels of one image for dynamic-resolution processors (see cap_pixels).
    A missing model or a processor without a chat template raises InputError (one line).
    """
    from transformers import AutoModelForImageTextToText

    from clipdpo_cli.models.device import resolve_device

    torch_device = resolve_device(device) if isinstance(device, str) else device
    torch_dtype = model_dtype(dtype, torch_device)
    processor = load_lvlm_processor(name_or_dir, chat_template, max_pixels)
    pad_left(processor.tokenizer)
    path = resolve_name(name_or_dir, "model")
    model = load_frozen(AutoModelForImageTextToText.from_pretrained, path, "model", torch_dtype, torch_device)
    return Lvlm(model=model, processor=processor, name=name_or_dir)
