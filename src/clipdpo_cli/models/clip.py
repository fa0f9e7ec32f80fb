"""Loading an open_clip model by name (see clip_registry) and encoding images and texts with it.

    clip = load_clip("dfn-h14", device="auto", precision="bf16")
    image_emb = clip.encode_images([pil_image])      # [n, d], L2-normalised, float32, on CPU
    text_emb = clip.encode_texts(["a brown dog"])     # [m, d]
    score = clip.similarity(image_emb, text_emb)      # [n, m]: 100 x cosine, the paper's CLIP score

`ClipModel` is the open_clip backend of the image-text scorer protocol (models/scorer.py): `resolve` and
`load` below are what models.scorer.load_scorer calls for every name without a backend prefix.

Text encoding is the dominant cost when an image has several captions: the text tower runs at the full
77-token context although captions are shorter. For open_clip's `CLIP` class (causal attention mask,
pooling at the end-of-text token, which has the highest token id) the output at that token depends only
on the tokens before it, so each batch is run at the context of its longest text: the same embeddings,
computed on fewer positions. Texts are sorted by length before batching so that batches are tight.
Towers where this does not hold (SigLIP: pooled at the last position without a causal mask; Hugging Face
text towers) run at the full context.
"""

from __future__ import annotations

import functools
import pickle
import warnings
from collections.abc import Sequence
from typing import Any

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.models.clip_registry import (
    CONFIG_NAME,
    LOCAL_DIR_PREFIX,
    ClipSource,
    cached_hub_file,
    describe,
    find_cached_weights,
    missing_tokenizer_message,
    missing_weights_message,
    resolve_clip,
)
from clipdpo_cli.models.device import Use, autocast, resolve_device, resolve_precision
from clipdpo_cli.models.hub import offline as hub_offline
from clipdpo_cli.models.hub import pickled_weights
from clipdpo_cli.models.scorer import CosineScore

DEFAULT_TEXT_BATCH = 256


class _ShortContext:
    """The model as its `encode_text` sees it, with the position table and causal mask cut to `length`."""

    def __init__(self, model: Any, length: int) -> None:
        self._model = model
        self.positional_embedding = model.positional_embedding[:length]
        self.attn_mask = model.attn_mask[:length, :length]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def supports_short_context(model: Any) -> bool:
    """True when encode_text's result does not depend on positions after the end-of-text token."""
    import open_clip

    return (
        type(model) is open_clip.CLIP
        and getattr(model, "text_pool_type", None) == "argmax"
        and getattr(model, "attn_mask", None) is not None
    )


class ClipModel(CosineScore):
    """An open_clip model with its eval preprocessing and tokenizer: an ImageTextScorer (models/scorer.py)."""

    def __init__(
        self, model: Any, preprocess: Any, tokenizer: Any, name: str, device: Any, precision: str = "fp32",
        source: ClipSource | None = None,
    ) -> None:  # fmt: skip
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.name = name
        self.device = device
        self.precision = precision
        self.source = source
        self.short_context = supports_short_context(model)

    def __repr__(self) -> str:
        return f"ClipModel({self.name!r}, device={self.device}, precision={self.precision})"

    def encode_pixels(self, pixels: Any) -> Any:
        """Embeddings of preprocessed images [n, 3, H, W]: L2-normalised float32 on CPU."""
        import torch
        import torch.nn.functional as F

        with torch.inference_mode(), autocast(self.device, self.precision):
            features = self.model.encode_image(pixels.to(self.device, non_blocking=True))
        return F.normalize(features.float(), dim=-1).cpu()

    def encode_images(self, images: Sequence[Any]) -> Any:
        """Embeddings of PIL images (preprocessed with the model's eval transform)."""
        import torch

        if not images:
            return torch.zeros(0, self.embed_dim)
        return self.encode_pixels(torch.stack([self.preprocess(img) for img in images]))

    @functools.cached_property
    def embed_dim(self) -> int:
        import torch

        with torch.inference_mode():
            return int(self.encode_tokens(self.tokenizer([""])).shape[-1])

    def encode_tokens(self, tokens: Any, shorten: bool | None = None) -> Any:
        """Embeddings of token ids; `shorten` (default: when valid) runs at the longest text's length."""
        import torch
        import torch.nn.functional as F

        shorten = self.short_context if shorten is None else shorten
        tokens = tokens.to(self.device)
        with torch.inference_mode(), autocast(self.device, self.precision):
            if shorten:
                length = int(tokens.argmax(dim=-1).max()) + 1
                view = _ShortContext(self.model, length)
                features = type(self.model).encode_text(view, tokens[:, :length])
            else:
                features = self.model.encode_text(tokens)
        return F.normalize(features.float(), dim=-1).cpu()

    def encode_texts(self, texts: Sequence[str], batch_size: int = DEFAULT_TEXT_BATCH) -> Any:
        """Embeddings of texts, batched by similar token length; rows in the order of `texts`.

        Each distinct text is encoded once, so equal texts get equal rows (in a batch with other partners
        a text's embedding can differ in its last bits).
        """
        import torch

        if not texts:
            return torch.zeros(0, self.embed_dim)
        distinct = list(dict.fromkeys(texts))
        if len(distinct) < len(texts):
            row = {text: i for i, text in enumerate(distinct)}
            return self.encode_texts(distinct, batch_size)[[row[t] for t in texts]]
        tokens = self.tokenizer(list(texts))
        if not self.short_context:
            parts = [self.encode_tokens(tokens[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
            return torch.cat(parts)
        order = torch.argsort(tokens.argmax(dim=-1), stable=True)
        out: Any = None
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            emb = self.encode_tokens(tokens[idx])
            if out is None:
                out = torch.empty(len(texts), emb.shape[-1])
            out[idx] = emb
        return out


def _create(source: ClipSource, weights: str, device: Any, cache_dir: str | None) -> tuple[Any, Any]:
    """Build the model with open_clip from a located weights file; returns (model, eval transform)."""
    import open_clip
    from open_clip.factory import load_checkpoint
    from open_clip.transform import PreprocessCfg, image_transform_v2

    common: dict[str, Any] = {"device": device, "precision": "fp32", "cache_dir": cache_dir}
    if source.kind == "local-dir":
        model = open_clip.create_model(LOCAL_DIR_PREFIX + (source.local_dir or ""), **common)
    elif source.kind == "file" and source.arch is None:  # checkpoint file with its config beside it
        model = open_clip.create_model(
            LOCAL_DIR_PREFIX + (source.local_dir or ""), load_weights=False, **common
        )
        load_checkpoint(model, weights)
        model.to(device)
    elif source.kind == "hf-hub":
        model = open_clip.create_model(f"hf-hub:{source.hf_repo}", **common)
    else:  # an architecture with a tag's (already located) weights, or with a checkpoint file
        model = open_clip.create_model(
            source.arch,
            pretrained=weights,
            force_quick_gelu=source.force_quick_gelu,
            force_preprocess_cfg=source.preprocess or None,
            **common,
        )
    # the eval transform, as open_clip.create_model_and_transforms builds it
    preprocess = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
    return model, preprocess


def _tokenizer(source: ClipSource, cache_dir: str | None) -> Any:
    import open_clip

    if source.kind in ("local-dir",) or (source.kind == "file" and source.arch is None):
        return open_clip.get_tokenizer(LOCAL_DIR_PREFIX + (source.local_dir or ""), cache_dir=cache_dir)
    if source.kind == "hf-hub":
        return open_clip.get_tokenizer(f"hf-hub:{source.hf_repo}", cache_dir=cache_dir)
    return open_clip.get_tokenizer(source.arch, cache_dir=cache_dir)


def locate_weights(source: ClipSource, cache_dir: str | None = None) -> str:
    """The local weights file; downloaded (by open_clip's own downloader) only when the Hub is reachable.

    For hf-hub sources the repository's open_clip_config.json is fetched too, so that open_clip never
    falls back to random weights because a download failed (it only logs a warning then).
    """
    found = find_cached_weights(source, cache_dir)
    if found and (source.kind != "hf-hub" or cached_hub_file(source.hf_repo or "", CONFIG_NAME, cache_dir)):
        return found
    if source.kind in ("local-dir", "file") or hub_offline():
        raise InputError(missing_weights_message(source, cache_dir))
    from open_clip.pretrained import download_pretrained, download_pretrained_from_hf, get_pretrained_cfg

    try:
        if source.kind == "hf-hub":
            download_pretrained_from_hf(source.hf_repo, filename=CONFIG_NAME, cache_dir=cache_dir)
            return download_pretrained_from_hf(source.hf_repo, cache_dir=cache_dir)
        return download_pretrained(get_pretrained_cfg(source.arch, source.pretrained), cache_dir=cache_dir)
    except Exception as exc:  # network or hub errors: one line, not a traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"{missing_weights_message(source, cache_dir)} (download failed: {first[:200]})"
        ) from None


def load_clip(
    name: str, device: Any = "auto", precision: str = "fp32", cache_dir: str | None = None
) -> ClipModel:
    """Load a CLIP model: alias, open_clip name:tag, hf-hub:, local-dir: or checkpoint (see clip_registry)."""
    torch_device = resolve_device(device) if isinstance(device, str) else device
    precision = resolve_precision(precision, Use.autocast, torch_device).value  # auto: by the device
    source = resolve_clip(name)
    weights = locate_weights(source, cache_dir)
    missing = missing_tokenizer_message(source, cache_dir)
    if missing:
        raise InputError(missing)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model, preprocess = _create(source, weights, torch_device, cache_dir)
            tokenizer = _tokenizer(source, cache_dir)
    except ImportError as exc:
        raise InputError(f"CLIP model '{name}' needs a missing package: {exc}") from None
    except pickle.UnpicklingError:
        raise pickled_weights(name, "CLIP model") from None
    except (OSError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot load CLIP model '{name}' ({describe(source)}): {first[:300]}") from None
    model.eval()
    return ClipModel(model, preprocess, tokenizer, name, torch_device, precision, source)


resolve = resolve_clip  # the scorer backend interface (models/scorer.py)


def load(name: str, device: Any = "auto", precision: str = "fp32", cache_dir: str | None = None) -> ClipModel:
    """models.scorer's loader for open_clip names."""
    return load_clip(name, device=device, precision=precision, cache_dir=cache_dir)
