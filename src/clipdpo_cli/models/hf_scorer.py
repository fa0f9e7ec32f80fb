"""The transformers backend of the image-text scorer (models/scorer.py): `transformers:ID_OR_DIR`.

Any dual encoder that transformers' AutoModel and AutoProcessor load and that has `get_image_features` /
`get_text_features` (CLIPModel, SiglipModel, Siglip2Model, ...), by Hub id or local directory:

    clipdpo score -m transformers:google/siglip2-so400m-patch14-384 captions.jsonl

Score convention: `similarity` is 100 x cosine of the L2-normalised projected features, as for open_clip, so
rankings, margins and categories mean the same for every backend. SigLIP models were trained with a sigmoid
over `cosine * exp(logit_scale) + logit_bias`; `model_logits` gives that value (the model's own
`logits_per_image`), which the tests check against. SigLIP text is padded to its full context
(`padding="max_length"`, as the model was trained); other text towers to the batch's longest text.
Weights stay fp32; `precision` autocasts the forward pass, as for open_clip.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.models.device import Use, autocast, resolve_device, resolve_precision
from clipdpo_cli.models.hub import load_pretrained, looks_like_path
from clipdpo_cli.models.hub import offline as hub_offline
from clipdpo_cli.models.scorer import CosineScore, encode_images_with

PREFIX = "transformers:"
CONFIG_NAME = "config.json"
WHAT = "image-text scorer"
FULL_CONTEXT_TYPES = ("siglip", "siglip2")  # text padded to max_length, as these models were trained


@dataclass(frozen=True)
class TransformersSource:
    """A resolved `transformers:` name: a local directory or a Hub repository id."""

    name: str
    target: str  # the absolute directory, or ORG/NAME
    local: bool


def resolve(name: str) -> TransformersSource:
    """What `transformers:ID_OR_DIR` means; never downloads. One-line UsageError / InputError."""
    name = name.strip()
    rest = name[len(PREFIX) :].strip() if name.startswith(PREFIX) else name
    if not rest:
        raise UsageError(f"'{name}': expected transformers:ORG/NAME (a Hub id) or transformers:/path/to/dir")
    expanded = os.path.abspath(os.path.expanduser(rest))
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, CONFIG_NAME)):
            raise InputError(f"{WHAT} '{name}': no {CONFIG_NAME} in {expanded}")
        return TransformersSource(name, expanded, local=True)
    if looks_like_path(rest) or rest.startswith("."):
        raise InputError(f"{WHAT} '{name}': directory not found: {expanded}")
    if rest.count("/") != 1 or not all(rest.split("/")):
        raise UsageError(f"'{name}': expected transformers:ORG/NAME (a Hub id) or transformers:/path/to/dir")
    return TransformersSource(name, rest, local=False)


def missing_message(source: TransformersSource, cache_dir: str | None = None) -> str | None:
    """One line when a Hub model is not cached and the Hub is offline; None when it can be loaded."""
    from clipdpo_cli.models.clip_registry import cached_hub_file, hub_cache_dir

    if source.local or not hub_offline() or cached_hub_file(source.target, CONFIG_NAME, cache_dir):
        return None
    return (
        f"{WHAT} '{source.name}' is not in the Hugging Face cache {hub_cache_dir(cache_dir)} (HF_HUB_OFFLINE "
        f"set); fetch it on a machine with internet: `hf download {source.target}` (then copy the Hugging "
        "Face cache, or set HF_HUB_CACHE), or pass transformers:/path/to/dir"
    )


class _Pixels:
    """preprocess: PIL image -> the image processor's tensors for that one image (picklable for workers)."""

    def __init__(self, image_processor: Any) -> None:
        self.image_processor = image_processor

    def __call__(self, image: Any) -> dict[str, Any]:
        out = self.image_processor(images=image, return_tensors="pt")
        return {key: value[0] for key, value in out.items() if hasattr(value, "shape")}


def _features(output: Any) -> Any:
    """get_*_features' result: a tensor (transformers 4) or an output whose pooler_output is projected (5)."""
    return output if hasattr(output, "shape") else output.pooler_output


class TransformersScorer(CosineScore):
    """A transformers dual encoder with its processor: an ImageTextScorer (models/scorer.py)."""

    def __init__(self, model: Any, processor: Any, name: str, device: Any, precision: str = "fp32") -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.name = name
        self.device = device
        self.precision = precision
        self.preprocess = _Pixels(processor.image_processor)
        text_config = getattr(model.config, "text_config", model.config)
        positions = getattr(text_config, "max_position_embeddings", 0)
        self.context = int(positions or self.tokenizer.model_max_length)
        self.full_context = getattr(model.config, "model_type", "") in FULL_CONTEXT_TYPES

    def __repr__(self) -> str:
        return f"TransformersScorer({self.name!r}, device={self.device}, precision={self.precision})"

    def encode_pixels(self, pixels: Any) -> Any:
        """Unit embeddings of stacked preprocessed images (pixel_values, or the processor's dict)."""
        import torch
        import torch.nn.functional as F

        batch = pixels if isinstance(pixels, dict) else {"pixel_values": pixels}
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        with torch.inference_mode(), autocast(self.device, self.precision):
            features = _features(self.model.get_image_features(**batch))
        return F.normalize(features.float(), dim=-1).cpu()

    def encode_images(self, images: Sequence[Any]) -> Any:
        return encode_images_with(self, images, self.embed_dim)

    def tokens(self, texts: Sequence[str]) -> dict[str, Any]:
        """The text tower's inputs: padded to the full context for SigLIP, to the longest text otherwise."""
        padding: str | bool = "max_length" if self.full_context else True
        encoded = self.tokenizer(
            list(texts), padding=padding, truncation=True, max_length=self.context, return_tensors="pt"
        )
        return {k: encoded[k] for k in ("input_ids", "attention_mask") if k in encoded}

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> Any:
        """Unit embeddings of texts, `batch_size` at a time, in the order given."""
        import torch
        import torch.nn.functional as F

        if not texts:
            return torch.zeros(0, self.embed_dim)
        parts = []
        for start in range(0, len(texts), batch_size):
            batch = {k: v.to(self.device) for k, v in self.tokens(texts[start : start + batch_size]).items()}
            with torch.inference_mode(), autocast(self.device, self.precision):
                parts.append(F.normalize(_features(self.model.get_text_features(**batch)).float(), dim=-1))
        return torch.cat(parts).cpu()

    @functools.cached_property
    def embed_dim(self) -> int:
        return int(self.encode_texts([""]).shape[-1])

    def model_logits(self, image_emb: Any, text_emb: Any) -> Any:
        """[n, m] the model's own logits_per_image: cosine x exp(logit_scale) (+ logit_bias for SigLIP)."""
        scale = float(self.model.logit_scale.detach().float().exp())
        bias = getattr(self.model, "logit_bias", None)
        logits = image_emb.float() @ text_emb.float().T * scale
        return logits + float(bias.detach().float()) if bias is not None else logits


def load(
    name: str, device: Any = "auto", precision: str = "fp32", cache_dir: str | None = None
) -> TransformersScorer:
    """Load `transformers:ID_OR_DIR` with AutoModel + AutoProcessor (fp32 weights; `precision` autocasts)."""
    import torch
    from transformers import AutoModel, AutoProcessor

    source = resolve(name)
    missing = missing_message(source, cache_dir)
    if missing:
        raise InputError(missing)
    torch_device = resolve_device(device) if isinstance(device, str) else device
    precision = resolve_precision(precision, Use.autocast, torch_device).value
    extra = {"cache_dir": cache_dir} if cache_dir else {}
    processor = load_pretrained(AutoProcessor.from_pretrained, source.target, WHAT, **extra)
    model = load_pretrained(AutoModel.from_pretrained, source.target, WHAT, dtype=torch.float32, **extra)
    usable = all(hasattr(model, m) for m in ("get_image_features", "get_text_features", "logit_scale"))
    if not usable or not hasattr(processor, "image_processor") or not hasattr(processor, "tokenizer"):
        raise InputError(
            f"{WHAT} '{name}' ({type(model).__name__}) is not a dual image-text encoder with an image-text "
            "processor (expected e.g. CLIPModel, SiglipModel, Siglip2Model)"
        )
    model.to(torch_device).eval()
    return TransformersScorer(model, processor, name, torch_device, precision)
