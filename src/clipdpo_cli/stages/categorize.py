"""Image categories for global filtering (paper Sec. 4.2): text, people, objects, scenes.

Each category's prototype is the mean of the L2-normalised CLIP text embeddings of its descriptions
(10 each in data/category_prompts.json; `--prototypes FILE` replaces them), normalised again; an image
gets the category whose prototype has the highest cosine similarity with its embedding. Any image-text
scorer works (models/scorer.py); its embeddings are unit vectors, so `category_sim` is their cosine.
"""

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.io.setting import setting
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.io.values import enum_value
from clipdpo_cli.models.clip_images import encode_image_chunks
from clipdpo_cli.models.clip_registry import DEFAULT_MODEL
from clipdpo_cli.models.device import Precision
from clipdpo_cli.models.scorer import ImageTextScorer, cosine

DECIMALS = 5
DEFAULT_PROTOTYPES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "category_prompts.json")


ALL_SIMS_FIELD = "category_sims"


@dataclass(frozen=True)
class CategorizeSettings:
    """What `clipdpo categorize` adds and how (the fields declared with `setting` are also its options)."""

    model: str = setting(DEFAULT_MODEL, shared=True)
    prototypes: str | None = setting(None, shared=True)  # None: the packaged data/category_prompts.json
    all_sims: bool = setting(
        False, f"Also add `{ALL_SIMS_FIELD}`: the similarity to every category.", flags=("--all-sims",)
    )
    overwrite: bool = setting(
        False, "Replace an existing `category` (otherwise an error).", flags=("--overwrite",)
    )
    device: str = setting("auto", shared=True)
    precision: str = setting("fp32", shared=True, cli_default=Precision.fp32, parse=enum_value)
    batch_size: int = setting(64, shared=True)
    workers: int = setting(0, shared=True, cli_default=2)  # a Python caller decodes in-process unless it asks
    image_root: str | None = setting(None, shared=True)
    cache_dir: str | None = setting(None, shared=True)
    field: str = "category"
    sim_field: str = "category_sim"
    # the field of every similarity ({"text": 0.1, ...}); --all-sims sets ALL_SIMS_FIELD
    all_field: str | None = None

    def __post_init__(self) -> None:
        if self.all_sims and self.all_field is None:
            object.__setattr__(self, "all_field", ALL_SIMS_FIELD)


def load_descriptions(path: str | None = None) -> dict[str, list[str]]:
    """{category: [descriptions]} from a JSON file (default: the packaged category_prompts.json)."""
    try:
        path_to_read = DEFAULT_PROTOTYPES if path is None else os.path.expanduser(path)
        with open(path_to_read, encoding="utf-8") as fh:
            text = fh.read()
        data = json.loads(text)
    except FileNotFoundError:
        raise InputError(f"prototypes file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read prototypes file {path}: {exc}") from None
    ok = (
        isinstance(data, dict)
        and data
        and all(
            isinstance(v, list) and v and all(isinstance(s, str) and s.strip() for s in v)
            for v in data.values()
        )
    )
    if not ok:
        raise InputError(
            f"prototypes file {path or 'category_prompts.json'} must map each category to a non-empty list "
            'of descriptions, e.g. {"text": ["a scanned document", ...], "people": [...]}'
        )
    return data


class CategoryPrototypes:
    """One normalised prototype per category, built from the descriptions with the model's text tower."""

    def __init__(self, clip: ImageTextScorer, descriptions: dict[str, list[str]]) -> None:
        import torch
        import torch.nn.functional as F

        self.names = list(descriptions)
        protos = [clip.encode_texts(descriptions[name]).mean(dim=0) for name in self.names]
        self.matrix = F.normalize(torch.stack(protos), dim=-1)  # [categories, d]

    def similarities(self, image_embedding: Any) -> dict[str, float]:
        sims = cosine(image_embedding[None], self.matrix)[0]
        return {name: float(s) for name, s in zip(self.names, sims, strict=True)}

    def fields(self, image_embedding: Any, options: CategorizeSettings) -> dict[str, Any]:
        """The fields categorize adds for one image embedding (check_category first, per record)."""
        sims = self.similarities(image_embedding)
        best = max(self.names, key=lambda n: sims[n])
        out: dict[str, Any] = {options.field: best, options.sim_field: round(sims[best], DECIMALS)}
        if options.all_field:
            out[options.all_field] = {n: round(s, DECIMALS) for n, s in sims.items()}
        return out


def check_category(record: dict[str, Any], options: CategorizeSettings) -> None:
    """Refuse to replace a category silently: score's rule for its score field (--overwrite may)."""
    if not options.overwrite and options.field in record:
        raise UsageError(
            f"record {record.get('id')} already has '{options.field}': pass --overwrite to replace it"
        )


def categorize_records(
    records: Iterable[dict[str, Any]],
    clip: ImageTextScorer,
    prototypes: CategoryPrototypes,
    options: CategorizeSettings | None = None,
    ctx: StageContext | None = None,
) -> Iterator[dict[str, Any]]:
    """Records with their image's category and its similarity added (one embedding per distinct image)."""
    options = options or CategorizeSettings()
    ctx = ctx or StageContext("categorize")
    chunks = encode_image_chunks(
        records, clip, batch_size=options.batch_size, workers=options.workers, image_root=options.image_root
    )
    for chunk in chunks:
        cache: dict[str, dict[str, Any]] = {}
        for entry in chunk.entries:
            if entry.error is not None or entry.image in chunk.failed:
                ctx.bad(entry.record, entry.error or chunk.failed[entry.image or ""])
                continue
            check_category(entry.record, options)
            image = entry.image or ""
            if image not in cache:
                cache[image] = prototypes.fields(chunk.embeddings[chunk.rows[image]], options)
            yield {**entry.record, **cache[image]}
