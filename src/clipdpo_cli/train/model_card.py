"""The README.md model card of a `clipdpo train` output, by the Hub's conventions and built on TRL's own card.

TRL's `generate_model_card` renders its card (front matter, framework versions, the trainer's paper and
citation, the TRL citation, tracker badges); this module fills in what TRL cannot know and replaces what does
not fit an LVLM: the front matter gets `base_model` (a Hub id: `--base-model-id`, else TRL's
`get_config_model_id` rule, else the folder's config.json `_name_or_path` or its Hub-cache folder name),
`license` (`--license`, else the base model's own card's), `datasets` (`--dataset-id`), `pipeline_tag`
and clipdpo's tags; the body gets the run's settings, its AMBER figures when present
(OUTPUT_DIR/amber.json, as `clipdpo eval-amber` writes it), a "Use" section whose every command line
parses, and the CLIP-DPO citation. No local path is written: folders are named by their base name.

`install(trainer, facts)` makes the trainer's `create_model_card` (called by TRL at every checkpoint and by
transformers before a Hub push) write this card instead of TRL's plain one.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

PAPER = "CLIP-DPO: Vision-Language Models as a Source of Preference for Fixing Hallucinations in LVLMs"
CLIPDPO_CITATION = f"""@inproceedings{{ouali2024clipdpo,
  title     = {{{{{PAPER}}}}},
  author    = {{Ouali, Yassine and Bulat, Adrian and Martinez, Brais and Tzimiropoulos, Georgios}},
  booktitle = {{European Conference on Computer Vision (ECCV)}},
  year      = {{2024}}
}}"""
AMBER_FILE = "amber.json"  # OUTPUT_DIR/amber.json: `clipdpo eval-amber ... > OUTPUT_DIR/amber.json`
_HUB_CACHE_FOLDER = re.compile(r"models--([^/\\]+?)--([^/\\]+?)[/\\]snapshots[/\\][^/\\]+[/\\]?$")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class RunFacts:
    """What the card reports about a run (known before training; steps come from the trainer)."""

    base_model: str  # --model as given: a Hub id or a local folder (only its name is written)
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
    trainer: str = "dpo"  # "dpo" or "kto": whose TRL paper and citation the card gives
    license: str | None = None  # a Hub license id (apache-2.0, llama2, other, ...)
    license_fields: dict[str, str] = field(default_factory=dict)  # license_name / license_link of "other"
    datasets: list[str] = field(default_factory=list)  # Hub dataset ids
    amber: dict[str, Any] | None = None  # an eval-amber result
    vision_tower: str = "frozen"  # frozen / trained
    projector: str = "trained"


def _is_hub_id(name: str) -> bool:
    return bool(_HUB_ID.match(name)) and not os.path.exists(name)


def hub_id_of(model: str, config_name: str | None = None) -> str | None:
    """The Hub id a model came from. TRL's rule first (trl.trainer.utils.get_config_model_id: the loaded
    config's `_name_or_path` when it is not a folder; `config_name` is that value); then, for a local folder,
    the id its config.json remembers (`_name_or_path`, when not a path), or the id in a Hub-cache folder name
    (`.../models--ORG--NAME/snapshots/REV`, what `huggingface-cli download` leaves on a cluster)."""
    if config_name and not os.path.isdir(config_name) and _is_hub_id(config_name):
        return config_name
    if not os.path.isdir(model):
        return model if _is_hub_id(model) or "/" not in model else None
    try:
        with open(os.path.join(model, "config.json"), encoding="utf-8") as fh:
            name = json.load(fh).get("_name_or_path") or ""
    except (OSError, ValueError, AttributeError):
        name = ""
    if isinstance(name, str) and _is_hub_id(name):
        return name
    cached = _HUB_CACHE_FOLDER.search(os.path.abspath(model) + os.sep)
    return f"{cached.group(1)}/{cached.group(2)}" if cached else None


def license_of(model: str, hub_id: str | None) -> tuple[str | None, dict[str, str]]:
    """The base model's license, from its own model card: the folder's README.md, else the Hub cache's copy
    of the Hub id's card (no download). Returns (license, {license_name, license_link} when given)."""
    from huggingface_hub import metadata_load, try_to_load_from_cache

    paths = [os.path.join(model, "README.md")] if os.path.isdir(model) else []
    if hub_id:
        try:
            cached = try_to_load_from_cache(hub_id, "README.md")
        except Exception:  # an id the cache cannot hold: no card
            cached = None
        if isinstance(cached, str):
            paths.append(cached)
    for path in paths:
        try:
            meta = metadata_load(path) or {}
        except Exception:  # a card without valid front matter gives no license
            continue
        value = meta.get("license")
        if isinstance(value, str) and value:
            names = ("license_name", "license_link")
            return value, {k: str(meta[k]) for k in names if isinstance(meta.get(k), str)}
    return None, {}


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


def read_amber(output_dir: str) -> dict[str, Any] | None:
    """OUTPUT_DIR/amber.json when it holds an eval-amber result, else None."""
    try:
        with open(os.path.join(output_dir, AMBER_FILE), encoding="utf-8") as fh:
            result = json.load(fh)
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and result.get("benchmark") == "AMBER" else None


def _name(path: str) -> str:
    return os.path.basename(os.path.normpath(path)) if path and path != "-" else (path or "")


def _trainer_class(trainer: str) -> Any:
    from trl.trainer.dpo_trainer import DPOTrainer
    from trl.trainer.kto_trainer import KTOTrainer

    return KTOTrainer if trainer == "kto" else DPOTrainer


def _wandb_url() -> str | None:
    run = getattr(sys.modules.get("wandb"), "run", None)  # as TRL's card: the run's page, when wandb is on
    url = getattr(run, "url", None)
    return url if isinstance(url, str) else None


def _sections(text: str) -> tuple[str, dict[str, str]]:
    """A markdown body split at its `## ` headings: (the part before the first, {heading: its text})."""
    parts = re.split(r"(?m)^## (.+)\n", text)
    return parts[0], {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def use_commands(repo: str) -> list[str]:
    """The clipdpo command lines of the card's "Use" section (a test parses each of them)."""
    return [
        f"clipdpo caption images/ --model {repo} --seed 0 -o captions.jsonl",
        f"clipdpo eval-amber --amber-root AMBER/ --model {repo} -r responses.jsonl",
    ]


def _amber_table(result: dict[str, Any]) -> str:
    gen, dis = result.get("generative") or {}, result.get("discriminative") or {}
    cells = [(k, gen.get(k)) for k in ("CHAIR", "Cover", "Hal", "Cog")]
    cells += [(k, dis.get(k)) for k in ("Accuracy", "Precision", "Recall", "F1")]
    cells += [("AMBER", result.get("AMBER"))]
    cells = [(k, v) for k, v in cells if isinstance(v, (int, float))]
    if not cells:
        return ""
    partial = result.get("complete") is False
    note = " (PARTIAL: the figures cover a subset of the responses)" if partial else ""
    head = "| " + " | ".join(k for k, _ in cells) + " |"
    rule = "|" + "---|" * len(cells)
    row = "| " + " | ".join(f"{v:.1f}" for _, v in cells) + " |"
    return (
        f"## Evaluation\n\n[AMBER](https://github.com/junyangwang0410/AMBER) ({result.get('task', 'all')} "
        f"task), scored by `clipdpo eval-amber`{note}:\n\n{head}\n{rule}\n{row}\n\n"
    )


_BODY = """
# {title}: CLIP-DPO

This model is {base} fine-tuned with direct preference optimisation{on}, on preference
pairs ranked by a CLIP model, following *{paper}* (Ouali et al., 2024), with clipdpo {version} and
[TRL](https://github.com/huggingface/trl).

## Use

```python
from transformers import AutoModelForImageTextToText, AutoProcessor

model = AutoModelForImageTextToText.from_pretrained("{repo}")
processor = AutoProcessor.from_pretrained("{repo}")
```

or with clipdpo (`pip install clipdpo-cli`):

```bash
{commands}
```

## Training procedure

{procedure}

{amber}## Citations

Cite CLIP-DPO as:

```bibtex
{citation}
```

{citations}
"""


def card_text(facts: RunFacts, steps: int) -> str:
    """The card: TRL's (trl.trainer.utils.generate_model_card) with clipdpo's front matter, run and usage."""
    from huggingface_hub import ModelCard

    from clipdpo_cli import __version__

    name = facts.hub_model_id or _name(facts.output_dir) or _name(facts.base_model)
    repo = facts.hub_model_id or f"path/to/{_name(facts.output_dir) or 'OUTPUT_DIR'}"
    trl_card = _trl_card(facts, name, repo)
    _, trl_sections = _sections(trl_card.text)
    base = (
        f"[{facts.base_model_id}](https://huggingface.co/{facts.base_model_id})"
        if facts.base_model_id
        else f"a local model (`{_name(facts.base_model)}`)"
    )
    on = ", ".join(f"[{d}](https://huggingface.co/datasets/{d})" for d in facts.datasets)
    table = _run_table(facts, steps, base)
    body = _BODY.format(
        title=name.rsplit("/", 1)[-1], base=base, on=f" on {on}" if on else "", paper=PAPER,
        version=__version__, repo=repo, commands="\n".join(use_commands(repo)),
        procedure=_procedure(trl_sections.get("Training procedure", ""), table, __version__).strip(),
        amber=_amber_table(facts.amber) if facts.amber else "", citation=CLIPDPO_CITATION,
        citations=trl_sections.get("Citations", "").strip(),
    )  # fmt: skip
    return str(ModelCard(f"---\n{trl_card.data.to_yaml()}\n---\n{body}"))


def _trl_card(facts: RunFacts, name: str, repo: str) -> Any:
    """TRL's card of the run, its front matter given clipdpo's license, datasets and pipeline tag."""
    from trl.trainer.utils import generate_model_card

    trainer = _trainer_class(facts.trainer)
    paper = getattr(trainer, "_paper", {}) or {}
    tags = ["clipdpo", "clip-dpo", "vision-language", "hallucination", *getattr(trainer, "_tag_names", [])]
    if facts.lora:
        tags.append("lora")
    card = generate_model_card(
        base_model=facts.base_model_id, model_name=name.rsplit("/", 1)[-1], hub_model_id=repo,
        dataset_name=facts.datasets[0] if facts.datasets else None, tags=list(dict.fromkeys(tags)),
        wandb_url=_wandb_url(), trackio_url=None, trainer_name=getattr(trainer, "_name", facts.trainer),
        trainer_citation=paper.get("citation"), paper_title=paper.get("title"), paper_id=paper.get("id"),
    )  # fmt: skip
    data = card.data
    data.licence = None  # TRL's template writes `licence: license` (a placeholder); the Hub reads `license`
    data.license = facts.license
    for key, value in facts.license_fields.items():
        setattr(data, key, value)
    data.datasets = facts.datasets or None
    data.pipeline_tag = "image-text-to-text"
    return card


def _run_table(facts: RunFacts, steps: int, base: str) -> str:
    """The run's settings as a two-column markdown table."""
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in sorted(facts.kinds.items())) or "kinds not recorded"
    scorer = ", ".join(f"`{s}`" for s in facts.scorers) or "not recorded in the pair records"
    loss = facts.loss + (f" (label smoothing {facts.label_smoothing})" if facts.label_smoothing else "")
    length = f"of --max-steps {facts.max_steps}" if facts.max_steps > 0 else f"{facts.epochs:g} epoch(s)"
    rows = [
        ("base model", base),
        ("preference pairs", f"`{_name(facts.pairs_file)}`: {facts.pairs:,} pairs ({kinds})"),
        ("pairs ranked by", scorer),
        ("loss", loss),
        ("beta", f"{facts.beta:g}"),
        ("reference", facts.reference),
        ("learning rate", f"{facts.learning_rate:g}"),
        ("vision tower / projector", f"{facts.vision_tower} / {facts.projector}"),
        ("effective batch", f"{facts.effective_batch:,}"),
        ("optimizer steps", f"{steps:,} ({length})"),
        ("text tokens per row", str(facts.max_length) if facts.max_length else "not cut"),
    ]
    if facts.lora:
        saved = "merged into the saved weights"
        if facts.lora["saved"] == "adapter":
            saved = "adapter only (load it on the base model with peft)"
        rows.append(("LoRA", f"r {facts.lora['r']}, alpha {facts.lora['alpha']}, {saved}"))
    return "| | |\n|---|---|\n" + "\n".join(f"| {key} | {value} |" for key, value in rows)


def _procedure(trl_procedure: str, table: str, version: str) -> str:
    """TRL's "Training procedure" section with the run's table before its framework versions (clipdpo's
    added to them)."""
    procedure = re.sub(r"\n(?:[ \t]*\n)+", "\n\n", trl_procedure)  # no tracker badge: ""
    versions = procedure.find("### Framework versions")
    if versions < 0:
        return f"{procedure}\n{table}\n\n"
    heading = "### Framework versions\n\n"
    procedure = procedure[:versions] + f"{table}\n\n" + procedure[versions:]
    return procedure.replace(heading, f"{heading}- clipdpo: {version}\n", 1)


def write_card(output_dir: str, facts: RunFacts, steps: int) -> str:
    """Write OUTPUT_DIR/README.md (with OUTPUT_DIR/amber.json's figures when there); its path."""
    os.makedirs(output_dir, exist_ok=True)
    facts.amber = read_amber(output_dir) or facts.amber
    path = os.path.join(output_dir, "README.md")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(card_text(facts, steps))
    return path


def run_facts(
    s: Any, pairs: Any, reference: str, effective_batch: int, decided: dict[str, Any] | None = None
) -> RunFacts:
    """The card's facts of a run: `s` its TrainSettings, `pairs` the validated PairColumns, `decided` what
    the trainer resolved (learning rate, vision tower, projector: build.build_trainer)."""
    from clipdpo_cli.train.losses import resolve_loss
    from clipdpo_cli.train.settings import learning_rate, train_projector

    kinds, scorers = pair_provenance(s.pairs) if int(os.environ.get("RANK", "0")) == 0 else ({}, [])
    loss = resolve_loss(s.loss)
    smoothing = s.label_smoothing
    if smoothing is None:  # the loss's own default (cdpo: 0.1), which the run used
        smoothing = loss.defaults.get("label_smoothing")
    lora = None
    if s.lora:
        lora = {"r": s.lora_r, "alpha": s.lora_alpha, "saved": "adapter" if s.save_adapter_only else "merged"}
    base_id = getattr(s, "base_model_id", None) or hub_id_of(s.model)
    license, license_fields = license_of(s.model, base_id)
    if getattr(s, "license", None):
        license, license_fields = s.license, {}
    datasets = [d.strip() for d in (getattr(s, "dataset_id", None) or "").split(",") if d.strip()]
    return RunFacts(
        base_model=s.model, base_model_id=base_id, pairs_file=s.pairs, pairs=len(pairs),
        loss=s.loss, beta=s.beta, label_smoothing=smoothing,
        learning_rate=(decided or {}).get("learning_rate", learning_rate(s)),
        effective_batch=effective_batch, epochs=s.epochs, max_steps=s.max_steps, reference=reference,
        lora=lora, max_length=s.max_length, kinds=kinds, scorers=scorers, hub_model_id=s.hub_model_id,
        output_dir=s.output_dir, trainer=loss.trainer, license=license, license_fields=license_fields,
        datasets=datasets,
        vision_tower=(decided or {}).get("vision_tower", "trained" if s.train_vision_tower else "frozen"),
        projector=(decided or {}).get("projector", "trained" if train_projector(s) else "frozen"),
    )  # fmt: skip


def install(trainer: Any, facts: RunFacts) -> RunFacts:
    """Make the trainer write this card wherever TRL / transformers would write theirs (rank 0 only)."""
    from trl.trainer.utils import get_config_model_id

    if facts.base_model_id is None:  # TRL's own rule: the loaded config's name when it is no folder
        config = getattr(getattr(trainer, "model", None), "config", None)
        facts.base_model_id = hub_id_of(facts.base_model, get_config_model_id(config) if config else None)

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
            from clipdpo_cli.io.log import info

            info("train", f"pushed {output_dir} to {url}")
