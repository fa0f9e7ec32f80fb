"""Zero-shot classifier math: class prototypes from templates, argmax over cosine scores, metrics.

A class prototype is the mean of the L2-normalised embeddings of its templated prompts, renormalised
(as in CLIP's zero-shot ImageNet classifier). A query (caption or image embedding, L2-normalised) is
assigned the class whose prototype has the highest cosine similarity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from clipdpo_cli.eval.zeroshot.resources import fill
from clipdpo_cli.models.scorer import cosine

EncodeTexts = Callable[[list[str]], Any]  # list of texts -> (n, d) tensor
Similarity = Callable[[Any, Any], Any]  # (queries [n, d], prototypes [c, d]) -> [n, c] scores


def encode_in_batches(encode: EncodeTexts, items: Sequence[Any], batch_size: int = 256) -> Any:
    """Concatenated encodings of `items`, `batch_size` at a time, L2-normalised (float32, CPU)."""
    import torch

    if not items:
        raise ValueError("nothing to encode")
    chunks = [encode(list(items[i : i + batch_size])) for i in range(0, len(items), batch_size)]
    out = torch.cat([c.detach().float().cpu() for c in chunks])
    return torch.nn.functional.normalize(out, dim=-1)


def class_prototypes(
    encode: EncodeTexts, classnames: Sequence[str], templates: Sequence[str], batch_size: int = 256
) -> Any:
    """(n_classes, d): per class, the renormalised mean of its normalised template embeddings.

    Classes are encoded a group at a time, so memory stays small for ImageNet's 1000 x 80 prompts.
    """
    import torch

    if not classnames or not templates:
        raise ValueError("class prototypes need at least one class name and one template")
    per_group = max(1, (8 * batch_size) // len(templates))
    parts = []
    for start in range(0, len(classnames), per_group):
        group = classnames[start : start + per_group]
        emb = encode_in_batches(encode, [fill(t, c) for c in group for t in templates], batch_size)
        parts.append(emb.view(len(group), len(templates), -1).mean(dim=1))
    return torch.nn.functional.normalize(torch.cat(parts), dim=-1)


def top_k(queries: Any, prototypes: Any, k: int = 5, similarity: Similarity = cosine) -> Any:
    """(n, min(k, n_classes)) class indices by decreasing similarity (default: cosine; rows normalised).

    The image baseline passes its scorer's own `similarity` (models/scorer.py).
    """
    scores = similarity(queries, prototypes)
    return scores.topk(min(k, prototypes.shape[0]), dim=1).indices


def metrics(topk: Any, labels: Sequence[int]) -> dict[str, Any]:
    """Top-1 and top-5 accuracy and mean per-class recall, in percent.

    Mean per-class recall averages the top-1 recall of the classes that occur among `labels` (a class
    with no evaluated image, e.g. under --limit, has no recall and is left out).
    """
    import torch

    y = torch.as_tensor(list(labels), dtype=torch.long)
    n = int(y.numel())
    if n == 0:
        return {"n": 0, "top1": None, "top5": None, "mean_per_class_recall": None, "classes_seen": 0}
    pred1 = topk[:, 0]
    correct1 = pred1 == y
    correct5 = (topk[:, :5] == y[:, None]).any(dim=1)
    recalls = []
    for cls in torch.unique(y).tolist():
        mask = y == cls
        recalls.append(correct1[mask].float().mean().item())
    return {
        "n": n,
        "top1": 100.0 * correct1.float().mean().item(),
        "top5": 100.0 * correct5.float().mean().item(),
        "mean_per_class_recall": 100.0 * sum(recalls) / len(recalls),
        "classes_seen": len(recalls),
    }
