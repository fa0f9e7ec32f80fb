"""The image-text scorer seam: what score, categorize and eval-zeroshot need of a model, and its loaders.

A scorer embeds images and texts into one space (rows L2-normalised, float32, on CPU) and scores their
pairs; `similarity` is 100 x cosine by default, the scale of the paper's thresholds (28 / 25 / margin 2).
Backends are chosen by the name's prefix, as open_clip chooses `hf-hub:` / `local-dir:`:

    transformers:ID_OR_DIR   models/hf_scorer.py  (transformers CLIPModel, SiglipModel, Siglip2Model)
    anything else            models/clip.py       (open_clip: aliases, NAME:TAG, hf-hub:, local-dir:, files)

Adding a backend: a module with `resolve(name)` (offline, one-line errors) and
`load(name, device, precision, cache_dir)` returning an `ImageTextScorer`, and one row in `BACKENDS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

SCORE_SCALE = 100.0  # the paper's thresholds (28 / 25 / margin 2.0) are on 100 x cosine


@runtime_checkable
class ImageTextScorer(Protocol):
    """A dual encoder: images and texts to unit vectors in one space, and a score of their pairs."""

    name: str  # the name it was loaded by (written to each record's `scorer` field)
    device: Any  # torch.device the model runs on
    # PIL image -> the model's input for one image: a tensor, or a dict of tensors (stack_pixels joins them).
    # Runs in DataLoader workers, so it must be picklable.
    preprocess: Callable[[Any], Any]

    def encode_pixels(self, pixels: Any) -> Any:
        """[n, d] unit embeddings (float32, CPU) of a stack of preprocessed images (stack_pixels)."""
        ...

    def encode_images(self, images: Sequence[Any]) -> Any:
        """[n, d] unit embeddings of PIL images."""
        ...

    def encode_texts(self, texts: Sequence[str], batch_size: int = ...) -> Any:
        """[m, d] unit embeddings of texts, in the order given."""
        ...

    def similarity(self, image_emb: Any, text_emb: Any) -> Any:
        """[n, m] scores of every image row against every text row (100 x cosine by default)."""
        ...


def cosine(a: Any, b: Any) -> Any:
    """[n, m] cosine similarities of unit rows (float32)."""
    return a.float() @ b.float().T


class CosineScore:
    """The default `similarity`: SCORE_SCALE x cosine of the unit embeddings."""

    score_scale: float = SCORE_SCALE

    def similarity(self, image_emb: Any, text_emb: Any) -> Any:
        return self.score_scale * cosine(image_emb, text_emb)


def stack_pixels(items: Sequence[Any]) -> Any:
    """One batch from per-image `preprocess` outputs: tensors stacked, or dicts stacked key by key."""
    import torch

    if items and isinstance(items[0], dict):
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}
    return torch.stack(list(items))


def encode_images_with(scorer: ImageTextScorer, images: Sequence[Any], dim: int) -> Any:
    """encode_images through preprocess + encode_pixels (an empty list gives [0, dim])."""
    import torch

    if not images:
        return torch.zeros(0, dim)
    return scorer.encode_pixels(stack_pixels([scorer.preprocess(img) for img in images]))


# prefix -> module with resolve(name) and load(name, device, precision, cache_dir); the default is open_clip
BACKENDS: dict[str, str] = {"transformers:": "clipdpo_cli.models.hf_scorer"}
DEFAULT_BACKEND = "clipdpo_cli.models.clip"


def backend(name: str) -> Any:
    """The backend module of a scorer name (by prefix)."""
    stripped = name.strip()
    for prefix, module in BACKENDS.items():
        if stripped.startswith(prefix):
            return importlib.import_module(module)
    return importlib.import_module(DEFAULT_BACKEND)


def resolve_scorer(name: str) -> Any:
    """What a scorer name means, without loading or downloading anything (one-line errors)."""
    return backend(name).resolve(name)


def load_scorer(
    name: str, device: Any = "auto", precision: str = "fp32", cache_dir: str | None = None
) -> ImageTextScorer:
    """Load the scorer a name means: `transformers:...` with transformers, anything else with open_clip.

    `precision` is the autocast precision (models.device.Use.autocast): weights stay fp32.
    """
    return backend(name).load(name, device=device, precision=precision, cache_dir=cache_dir)
