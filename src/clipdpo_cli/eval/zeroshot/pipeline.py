"""The eval-zeroshot pipeline: caption the images (cached), then classify captions by text-to-text similarity
to class prototypes, and optionally the images directly with the text encoder's image tower (CLIP baseline).

Phase 1 captions every selected image of every dataset (only those missing from the cache; the LVLM is not
even loaded when all are cached) with the benchmarks' one in-process respond pass (eval/answer.py; the
cache: eval/zeroshot/captions.py).
Phase 2 loads the text encoder once and scores each dataset.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from clipdpo_cli.eval.answer import ModelPass, answer_queries
from clipdpo_cli.eval.zeroshot.captions import CaptionCache, Sample, caption_query
from clipdpo_cli.eval.zeroshot.classify import class_prototypes, encode_in_batches, metrics, top_k
from clipdpo_cli.eval.zeroshot.datasets import DatasetSpec, LabelledSet
from clipdpo_cli.eval.zeroshot.resources import Prompts, describe
from clipdpo_cli.eval.zeroshot.settings import ZeroshotSettings
from clipdpo_cli.io.errors import BadRecord, InputError, UsageError
from clipdpo_cli.io.jsonl import existing_records
from clipdpo_cli.io.progress import Progress
from clipdpo_cli.io.records import make_id
from clipdpo_cli.io.shard import Shard
from clipdpo_cli.io.stage import StageContext
from clipdpo_cli.stages.respond import RespondSettings

if TYPE_CHECKING:
    from clipdpo_cli.models.generator import ImageTextGenerator
    from clipdpo_cli.models.scorer import ImageTextScorer

METRIC_NAMES = ("top1", "top5", "mean_per_class_recall")


@dataclass
class EvalSet:
    """A dataset to evaluate, with its class names and templates already chosen."""

    data: LabelledSet
    prompts: Prompts
    spec: DatasetSpec | None = None
    split: str = ""


def select_samples(data: LabelledSet, limit: int | None) -> list[Sample]:
    """All samples, or `limit` of them picked by a stable hash of their key (same on every machine)."""
    samples = [Sample(data.name, data.key(img), img, lbl, data.classes[lbl]) for img, lbl in data.samples]
    if limit is not None and limit < len(samples):
        samples = sorted(samples, key=lambda s: make_id(s.dataset, s.key))[:limit]
    return samples


class _Skips:
    """Images left out: an unreadable one stops the run (--on-error fail) or is counted and left out (skip),
    by the runner's error policy (io.stage.StageContext.bad), as in the captioning pass."""

    def __init__(self, on_error: str) -> None:
        self.ctx = StageContext("eval-zeroshot", on_error)
        self.keys: set[tuple[str, str]] = set()

    def __call__(self, sample: Sample, error: BadRecord) -> None:
        self.ctx.bad({"id": f"{sample.dataset}/{sample.key}", "image": sample.image}, error)  # raises on fail
        self.keys.add((sample.dataset, sample.key))


def caption_pass(settings: ZeroshotSettings) -> ModelPass:
    """The respond pass that writes the captions (eval/answer.py): greedy, into --captions under the runner's
    --resume (which repairs a torn last line and never writes an id that is already there), --shard and
    --on-error."""
    assert settings.model is not None
    respond = RespondSettings(max_new_tokens=settings.max_new_tokens, temperature=0.0, top_p=1.0,
                              batch_size=settings.batch_size, response_field="text")  # fmt: skip
    return ModelPass(
        model=settings.model, device=settings.device, dtype=settings.dtype,
        chat_template=settings.chat_template, max_pixels=settings.max_pixels, generation=respond,
        responses_out=settings.captions_out,
        resume=settings.captions_out is not None, shard=settings.shard, on_error=settings.on_error,
        quiet=settings.quiet, progress_every=settings.progress_every, engine=settings.engine,
    )  # fmt: skip


def run_captioning(
    sets: Sequence[EvalSet],
    selected: dict[str, list[Sample]],
    settings: ZeroshotSettings,
    cache: CaptionCache,
    skips: _Skips,
    log: Callable[[str], None],
    load_lvlm: Callable[[], ImageTextGenerator] | None = None,
) -> int:
    """Caption the selected images that the cache lacks (this shard's: the runner's --shard, by image) with
    the one in-process respond pass of the benchmarks (eval/answer.py), then add them to `cache`. Returns
    how many were captioned."""
    todo: list[Sample] = []
    for ev in sets:
        mine = selected[ev.data.name]
        missing = [s for s in mine if cache.lookup(s, settings.prompt, settings.model) is None]
        log(f"{ev.data.name}: {len(mine)} images, {len(mine) - len(missing)} captions cached")
        todo += missing
    if not todo or settings.model is None:
        return 0
    start = time.monotonic()
    queries = [caption_query(s, settings.prompt, settings.model, settings.max_new_tokens) for s in todo]
    captions = answer_queries("eval-zeroshot captions", queries, caption_pass(settings),
                              lambda path: existing_records(path, repair=False), load=load_lvlm,
                              unit="images")  # fmt: skip
    cache.add(captions)
    still = [s for s in todo if cache.lookup(s, settings.prompt, settings.model) is None]
    if Shard.parse(settings.shard).is_whole:  # left out by the stage under --on-error skip
        skips.keys.update((s.dataset, s.key) for s in still)
    n = len(todo) - len(still)
    log(f"captioned {n} images in {time.monotonic() - start:.1f}s")
    _free_accelerator_memory()
    return n


def progress(settings: ZeroshotSettings, total: int, what: str) -> Progress:
    """The progress display of one phase (io.progress): images done of `total`."""
    name, every = f"eval-zeroshot {what}", settings.progress_every
    return Progress(name, unit="images", total=total, quiet=settings.quiet, every=every)


def _load_text_encoder(settings: ZeroshotSettings) -> ImageTextScorer:
    from clipdpo_cli.models.scorer import load_scorer

    return load_scorer(settings.text_encoder, device=settings.device, precision=settings.precision)


def _free_accelerator_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def score_dataset(
    ev: EvalSet,
    samples: Sequence[Sample],
    encoder: ImageTextScorer,
    settings: ZeroshotSettings,
    cache: CaptionCache | None,
    skips: _Skips,
    predictions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Metrics of one dataset: caption-based (with a cache) and/or the CLIP image baseline.
    With a `predictions` list, one record per image (caption, top-5 classes per method) is appended."""
    data = ev.data
    result: dict[str, Any] = {
        "dataset": data.name,
        "title": data.title,
        "split": ev.split or None,
        "n_classes": data.n_classes,
        "text_encoder": settings.text_encoder,
        **describe(ev.prompts),
    }
    prototypes = class_prototypes(
        encoder.encode_texts, ev.prompts.classnames, ev.prompts.templates, settings.text_batch_size
    )
    per_image: dict[str, dict[str, Any]] = {}
    if cache is not None:
        kept = [s for s in samples if (s.dataset, s.key) not in skips.keys]
        texts = [cache.lookup(s, settings.prompt, settings.model) for s in kept]
        missing = sum(t is None for t in texts)
        if missing:
            hint = "run with --model to generate them" if settings.model is None else "see the log above"
            raise InputError(
                f"{data.name}: {missing} of {len(kept)} images have no cached caption for this prompt"
                f"{' and model ' + settings.model if settings.model else ''} ({hint})"
            )
        result["model"] = settings.model or _cached_model(cache, kept, settings.prompt)
        result["prompt"] = settings.prompt
        topk = None
        if kept:
            emb = encode_in_batches(encoder.encode_texts, texts, settings.text_batch_size)  # type: ignore[arg-type]
            topk = top_k(emb, prototypes)
            for sample, text, row in zip(kept, texts, topk.tolist(), strict=True):
                per_image.setdefault(sample.key, {})["caption"] = text
                per_image[sample.key]["caption_top5"] = row
        result["caption"] = metrics(topk, [s.label for s in kept])
    if settings.baseline == "clip":
        kept, topk = _image_baseline(samples, encoder, prototypes, settings, skips)
        result["clip"] = metrics(topk, [s.label for s in kept])
        for sample, row in zip(kept, topk.tolist() if topk is not None else [], strict=True):
            per_image.setdefault(sample.key, {})["clip_top5"] = row
    result["n_skipped"] = sum(1 for s in samples if (s.dataset, s.key) in skips.keys)
    if predictions is not None:
        predictions += [_prediction(data, s, per_image[s.key]) for s in samples if s.key in per_image]
    return result


def _prediction(data: LabelledSet, sample: Sample, found: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": make_id("zeroshot-prediction", sample.dataset, sample.key),
        "dataset": sample.dataset,
        "key": sample.key,
        "image": sample.image,
        "label": sample.label,
        "class": sample.cls,
    }
    for method in ("caption", "clip"):
        top = found.get(f"{method}_top5")
        if top is not None:
            if method == "caption":
                record["caption"] = found["caption"]
            record[f"{method}_pred"] = top[0]
            record[f"{method}_pred_class"] = data.classes[top[0]]
            record[f"{method}_top5"] = top
    return record


def _cached_model(cache: CaptionCache, samples: Sequence[Sample], prompt: str) -> str | None:
    for s in samples:
        models = cache.by_image.get((s.dataset, s.key, prompt))
        if models:
            return next(iter(models))
    return None


def _image_baseline(
    samples: Sequence[Sample],
    encoder: ImageTextScorer,
    prototypes: Any,
    settings: ZeroshotSettings,
    skips: _Skips,
) -> tuple[list[Sample], Any]:
    """Usual CLIP zero-shot: image embeddings against the same class prototypes; (samples, top-k)."""
    import torch

    from clipdpo_cli.stages.batched import prefetch_images

    todo = [s for s in samples if (s.dataset, s.key) not in skips.keys]
    embeddings, done = [], []
    decoded = prefetch_images((({"image": s.image}, s) for s in todo), lookahead=2 * settings.batch_size)
    with progress(settings, len(todo), "clip baseline") as bar:
        while chunk := list(islice(decoded, settings.batch_size)):
            kept, images = [], []
            for _, sample, image in chunk:
                if isinstance(image, BadRecord):
                    skips(sample, image)  # raises under --on-error fail
                else:
                    kept.append(sample)
                    images.append(image)
            if kept:
                emb = encoder.encode_images(images)
                embeddings.append(torch.nn.functional.normalize(emb.detach().float().cpu(), dim=-1))
                done += kept
            bar.update(len(done))
    if not embeddings:
        return [], None
    return done, top_k(torch.cat(embeddings), prototypes, similarity=encoder.similarity)


def evaluate(
    sets: Sequence[EvalSet],
    settings: ZeroshotSettings,
    log: Callable[[str], None],
    *,
    load_lvlm: Callable[[], ImageTextGenerator] | None = None,
    load_text_encoder: Callable[[], ImageTextScorer] | None = None,
) -> list[dict[str, Any]]:
    """Per-dataset results (plus an 'average' entry for several datasets); [] for a captioning shard."""
    if settings.model and not settings.captions:
        log("captions are not cached (pass --captions FILE to keep them for re-scoring)")
    shard = Shard.parse(settings.shard)
    if settings.model is None and not shard.is_whole:
        raise UsageError("--shard splits the captioning: it needs --model")
    if not settings.use_captions and settings.baseline is None:
        raise UsageError("nothing to evaluate: give --model or --captions, or --baseline clip")
    if not shard.is_whole and not settings.captions_out:
        raise UsageError(
            "sharding (--shard, or SLURM array variables) needs --captions FILE: each shard writes its "
            "captions there"
        )
    selected = {ev.data.name: select_samples(ev.data, settings.limit) for ev in sets}
    skips = _Skips(settings.on_error)
    cache = None
    if settings.use_captions:
        cache = CaptionCache(settings.captions, optional=settings.captions_out)
        run_captioning(sets, selected, settings, cache, skips, log, load_lvlm)
        if not shard.is_whole:
            log(
                f"shard {shard.index}/{shard.count}: captions written to "
                f"{settings.captions_out}; "
                "once every shard is done, score with --captions FILE... (all shard files) and no --shard"
            )
            return []
    encoder = load_text_encoder() if load_text_encoder is not None else _load_text_encoder(settings)
    results = []
    predictions: list[dict[str, Any]] | None = [] if settings.predictions else None
    for ev in sets:
        start = time.monotonic()
        result = score_dataset(ev, selected[ev.data.name], encoder, settings, cache, skips, predictions)
        results.append(result)
        log(f"{ev.data.name}: scored {len(selected[ev.data.name])} images in {time.monotonic() - start:.1f}s")
    if predictions is not None and settings.predictions:
        from clipdpo_cli.io.jsonl import JsonlWriter

        with JsonlWriter(settings.predictions) as writer:
            for record in predictions:
                writer.write(record)
    if len(results) > 1:
        results.append(average(results))
    return results


def average(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Unweighted mean over datasets of each metric (as the paper's Avg column)."""
    out: dict[str, Any] = {"dataset": "average", "title": "Avg", "n_datasets": len(results)}
    for method in ("caption", "clip"):
        rows = [r[method] for r in results if r.get(method) and r[method].get("top1") is not None]
        if rows:
            out[method] = {m: sum(r[m] for r in rows) / len(rows) for m in METRIC_NAMES}
            out[method]["n"] = sum(r["n"] for r in rows)
    return out


def format_table(results: Sequence[dict[str, Any]], metric: str = "top1") -> str:
    """A plain-text table like the paper's Table 3: one row per method, one column per dataset."""
    if not results:
        return ""
    columns = [r.get("title") or r["dataset"] for r in results]
    rows = []
    first = results[0]
    labels = {
        "caption": f"{first.get('model') or 'captions'} (caption -> text)",
        "clip": f"{first.get('text_encoder')} (image, CLIP baseline)",
    }
    for method in ("caption", "clip"):
        if any(method in r for r in results):
            cells = [
                "-" if not r.get(method) or r[method].get(metric) is None else f"{r[method][metric]:.1f}"
                for r in results
            ]
            rows.append((labels[method], cells))
    name_width = max([len("Method"), *(len(label) for label, _ in rows)])
    widths = [max(len(c), 5) for c in columns]
    lines = [f"Zero-shot classification, {metric.replace('_', ' ')} (%)"]

    def row(first: str, cells: Sequence[str]) -> str:
        return "  ".join([first.ljust(name_width), *(c.rjust(w) for c, w in zip(cells, widths, strict=True))])

    lines.append(row("Method", columns))
    lines += [row(label, cells) for label, cells in rows]
    return "\n".join(lines)
