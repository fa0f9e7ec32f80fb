"""The README.md model card of a `clipdpo train` output: which model was tuned, on what, and how.

TRL's own card says "fine-tuned version of [None]" for a model loaded from a local folder and knows nothing
of the pairs. `install(trainer, facts)` makes the trainer's `create_model_card` (called by TRL at every
checkpoint and by transformers before a Hub push) write this card instead; `write_card` is the card itself,
rendered with huggingface_hub's ModelCard so that its metadata block is what the Hub reads.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

PAPER = "CLIP-DPO: Vision-Language Models as a Source of Preference for Fixing Hallucinations in LVLMs"


@dataclass
class RunFacts:
    """What the card reports about a run (known before training; steps come from the trainer)."""

    base_model: str  # --model as given: a Hub id or a local folder
    base_model_id: str | None  # the Hub id it came from, when known (the card's base_model metadata)
    pairs_file: str
    pairs: int
    loss: str
    beta: float
    label_smoothing: float | None
    learning_rate: float
    effective_batch: int
    epochs: float
    max_steps: int
    reference: str  # live / precomputed / adapter
    lora: dict[str, Any] | None = None  # {"r", "alpha", "saved": "merged" | "adapter"}
    max_length: int | None = None
    kinds: dict[str, int] = field(default_factory=dict)  # pair kind -> count (caption, qa)
    scorers: list[str] = field(default_factory=list)  # scorers named in the pairs, if any
    hub_model_id: str | None = None
    output_dir: str = ""  # the card's title without a Hub id is this folder's name
    vision_tower: str = "frozen"  # frozen / trained
    projector: str = "trained"


def hub_id_of(model: str) -> str | None:
    """The Hub id a model came from: `model` itself unless it is a local folder; for a folder, the id its
    config remembers (`_name_or_path`) when that is not a path either."""
    if not os.path.isdir(model):
        return model
    import json

    try:
        with open(os.path.join(model, "config.json"), encoding="utf-8") as fh:
            name = json.load(fh).get("_name_or_path") or ""
    except (OSError, ValueError):
        return None
    return name if name and not os.path.isabs(name) and not os.path.exists(name) and "/" in name else None


def pair_provenance(path: str) -> tuple[dict[str, int], list[str]]:
    """Pair kinds (caption / qa) and the scorers the pair records name, from one pass over the file."""
    if path == "-":
        return {}, []
    from clipdpo_cli.io.jsonl import read_jsonl

    kinds: Counter[str] = Counter()
    scorers: set[str] = set()
    try:
        for record in read_jsonl(path):
            kinds[str(record.get("kind", "caption"))] += 1
            for key in ("scorer", "chosen_scorer"):
                if isinstance(record.get(key), str):
                    scorers.add(record[key])
    except Exception:  # the card is a courtesy: training already validated the pairs
        return dict(kinds), sorted(scorers)
    return dict(kinds), sorted(scorers)


def card_text(facts: RunFacts, steps: int) -> str:
    """The card: YAML metadata for the Hub, then what was trained, on what, and how to load it."""
    from huggingface_hub import ModelCard, ModelCardData

    from clipdpo_cli import __version__

    tags = ["clipdpo", "clip-dpo", "dpo", "trl", "vision-language", "hallucination"]
    if facts.lora:
        tags.append("lora")
    data = ModelCardData(
        base_model=facts.base_model_id,
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        tags=tags,
    )
    name = facts.hub_model_id or os.path.basename(os.path.abspath(facts.output_dir or facts.base_model))
    base = (
        f"[{facts.base_model_id}](https://huggingface.co/{facts.base_model_id})"
        if facts.base_model_id
        else f"`{facts.base_model}`"
    )
    if facts.base_model_id and os.path.isdir(facts.base_model):
        base += f" (loaded from `{facts.base_model}`)"
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in sorted(facts.kinds.items())) or "kinds not recorded"
    scorer = ", ".join(f"`{s}`" for s in facts.scorers) or "not recorded in the pair records"
    loss = facts.loss + (f" (label smoothing {facts.label_smoothing})" if facts.label_smoothing else "")
    rows = [
        ("base model", base),
        ("preference pairs", f"`{facts.pairs_file}`: {facts.pairs:,} pairs ({kinds})"),
        ("pairs ranked by", scorer),
        ("loss", loss),
        ("beta", f"{facts.beta:g}"),
        ("reference", facts.reference),
        ("learning rate", f"{facts.learning_rate:g}"),
        ("vision tower / projector", f"{facts.vision_tower} / {facts.projector}"),
        ("effective batch", f"{facts.effective_batch:,}"),
        (
            "optimizer steps",
            f"{steps:,}"
            + (
                f" (of --max-steps {facts.max_steps})"
                if facts.max_steps > 0
                else f" ({facts.epochs:g} epoch(s))"
            ),
        ),
        ("text tokens per row", str(facts.max_length) if facts.max_length else "not cut"),
    ]
    if facts.lora:
        saved = (
            "adapter only (load it on the base model with peft)"
            if facts.lora["saved"] == "adapter"
            else ("merged into the saved weights")
        )
        rows.append(("LoRA", f"r {facts.lora['r']}, alpha {facts.lora['alpha']}, {saved}"))
    table = "\n".join(f"| {key} | {value} |" for key, value in rows)
    repo = facts.hub_model_id or "OUTPUT_DIR"
    body = f"""
# {name.rsplit("/", 1)[-1]}: CLIP-DPO

This model is {base} fine-tuned with direct preference optimisation on preference pairs ranked by a CLIP
model, following *{PAPER}* (Ouali et al., 2024), with clipdpo {__version__} and
[TRL](https://github.com/huggingface/trl).

## Training

| | |
|---|---|
{table}

## Use

```python
from transformers import AutoModelForImageTextToText, AutoProcessor

model = AutoModelForImageTextToText.from_pretrained("{repo}")
processor = AutoProcessor.from_pretrained("{repo}")
```

or with clipdpo: `clipdpo caption IMAGES --model {repo}`, `clipdpo eval-amber AMBER_DIR --model {repo}`.

## Citation

```bibtex
@inproceedings{{ouali2024clipdpo,
  title     = {{{PAPER}}},
  author    = {{Ouali, Yassine and Bulat, Adrian and Martinez, Brais and Tzimiropoulos, Georgios}},
  booktitle = {{European Conference on Computer Vision (ECCV)}},
  year      = {{2024}}
}}
```
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def write_card(output_dir: str, facts: RunFacts, steps: int) -> str:
    """Write OUTPUT_DIR/README.md; its path."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "README.md")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(card_text(facts, steps))
    return path


def run_facts(
    s: Any, pairs: Any, reference: str, effective_batch: int, decided: dict[str, Any] | None = None
) -> RunFacts:
    """The card's facts of a run: `s` its TrainSettings, `pairs` the validated PairColumns, `decided` what
    the trainer resolved (learning rate, vision tower, projector: trainer.build_trainer)."""
    from clipdpo_cli.train.settings import learning_rate, train_projector

    kinds, scorers = pair_provenance(s.pairs) if int(os.environ.get("RANK", "0")) == 0 else ({}, [])
    from clipdpo_cli.train.losses import resolve_loss

    smoothing = s.label_smoothing
    if smoothing is None:  # the loss's own default (cdpo: 0.1), which the run used
        smoothing = resolve_loss(s.loss).defaults.get("label_smoothing")
    lora = None
    if s.lora:
        lora = {"r": s.lora_r, "alpha": s.lora_alpha, "saved": "adapter" if s.save_adapter_only else "merged"}
    return RunFacts(
        base_model=s.model, base_model_id=hub_id_of(s.model), pairs_file=s.pairs, pairs=len(pairs),
        loss=s.loss, beta=s.beta, label_smoothing=smoothing,
        learning_rate=(decided or {}).get("learning_rate", learning_rate(s)),
        effective_batch=effective_batch, epochs=s.epochs, max_steps=s.max_steps, reference=reference,
        lora=lora, max_length=s.max_length, kinds=kinds, scorers=scorers, hub_model_id=s.hub_model_id,
        output_dir=s.output_dir,
        vision_tower=(decided or {}).get("vision_tower", "trained" if s.train_vision_tower else "frozen"),
        projector=(decided or {}).get("projector", "trained" if train_projector(s) else "frozen"),
    )  # fmt: skip


def install(trainer: Any, facts: RunFacts) -> RunFacts:
    """Make the trainer write this card wherever TRL / transformers would write theirs (rank 0 only)."""

    def create_model_card(*args: Any, **kwargs: Any) -> None:
        if trainer.is_world_process_zero():
            facts.hub_model_id = facts.hub_model_id or getattr(trainer, "hub_model_id", None)
            write_card(trainer.args.output_dir, facts, trainer.state.global_step)

    trainer.create_model_card = create_model_card
    return facts


def finish(trainer: Any, facts: RunFacts, output_dir: str) -> None:
    """After the model is saved: the final card in `output_dir`, then the --push-to-hub upload (rank 0)."""
    from clipdpo_cli.train.publish import push_output

    if trainer.is_world_process_zero():
        facts.hub_model_id = facts.hub_model_id or getattr(trainer, "hub_model_id", None)
        write_card(output_dir, facts, trainer.state.global_step)
        url = push_output(
            trainer, output_dir, f"clipdpo train: {facts.loss}, {trainer.state.global_step} steps"
        )
        if url:
            import sys

            print(f"clipdpo train: pushed {output_dir} to {url}", file=sys.stderr, flush=True)
