"""A small synthetic run on disk, shaped like what the commands write (for the report's tests)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

CATEGORY_MEANS = {"text": 33.0, "people": 29.0, "objects": 29.5, "scenes": 28.5}


def _jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def amber_result(
    chair: float, cover: float, hal: float, cog: float, f1: float, model: str | None, complete: bool = True
) -> dict[str, Any]:
    """An eval-amber result with the fields the command writes (counts left out where not needed)."""
    result: dict[str, Any] = {
        "benchmark": "AMBER",
        "task": "all",
        "AMBER": round((100 - chair + f1) / 2, 1),
        "generative": {"CHAIR": chair, "Cover": cover, "Hal": hal, "Cog": cog, "counts": {}},
        "discriminative": {"Accuracy": f1 - 3, "Precision": f1 + 2, "Recall": f1 - 1, "F1": f1, "counts": {}},
        "existence": {"Accuracy": 80.0, "Precision": 90.0, "Recall": 85.0, "F1": 87.4, "counts": {}},
        "responses": {"scored": 15220 if complete else 1200, "expected": 15220, "missing": 0},
        "complete": complete,
        "nlp": {"backend": "builtin"},
    }
    if model:
        result["model"] = model
    return result


def zeroshot_lines(model: str, top1: list[float], clip: list[float] | None) -> list[dict[str, Any]]:
    names = [("food101", "Food-101"), ("pets", "OxfordPets"), ("eurosat", "EuroSAT")]
    lines = []
    for (key, title), t1, c1 in zip(names, top1, clip or [None] * 3, strict=True):
        line: dict[str, Any] = {
            "dataset": key,
            "title": title,
            "text_encoder": "siglip-so400m",
            "model": model,
            "caption": {"n": 100, "top1": t1, "top5": min(100.0, t1 + 20)},
        }
        if c1 is not None:
            line["clip"] = {"n": 100, "top1": c1, "top5": min(100.0, c1 + 10)}
        lines.append(line)
    avg: dict[str, Any] = {
        "dataset": "average",
        "title": "Avg",
        "n_datasets": 3,
        "caption": {"top1": sum(top1) / 3},
    }
    if clip:
        avg["clip"] = {"top1": sum(clip) / 3}
    return [*lines, avg]


def trainer_state(steps: int, every: int = 1) -> dict[str, Any]:
    """A transformers trainer_state.json whose log_history has TRL's DPO keys at every `every` steps."""
    history = []
    for step in range(every, steps + 1, every):
        history.append(
            {
                "step": step,
                "epoch": step / steps,
                "loss": round(0.6931 - 0.01 * step, 4),
                "rewards/margins": 0.02 * step,
                "rewards/accuracies": min(1.0, 0.5 + 0.03 * step),
                "learning_rate": 5e-7,
            }
        )
    history.append({"step": steps, "train_runtime": 12.5, "train_loss": 0.6, "total_flos": 1.0})
    return {"global_step": steps, "max_steps": steps, "log_history": history}


def write_run(root: Path, n_images: int = 24, seed: int = 0) -> dict[str, Path]:
    """Scored captions and questions, filter rejects, pairs (with images), two training runs, two AMBER
    results (one partial) and two zero-shot outputs under `root`; returns their paths by name."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    categories = list(CATEGORY_MEANS)
    scored, rejects, pairs = [], [], []
    colors = ["#d9534f", "#5cb85c", "#428bca", "#f0ad4e"]
    for i in range(n_images):
        image = images_dir / f"img_{i:03d}.png"
        img = Image.new("RGB", (96, 72), "#eeeeee")
        ImageDraw.Draw(img).ellipse((10 + i % 30, 10, 60 + i % 30, 60), fill=colors[i % 4])
        img.save(image)
        category = categories[i % 4]
        captions = []
        for k in range(5):
            score = round(rng.gauss(CATEGORY_MEANS[category], 2.0), 3)
            text = " ".join(["a", colors[i % 4][1:], "shape", "on", "grey"] + ["word"] * rng.randrange(0, 6))
            record = {
                "id": f"c{i}-{k}",
                "image": str(image),
                "kind": "caption",
                "text": text,
                "clip_score": score,
                "category": category,
            }
            scored.append(record)
            if score < 28.0:
                rejects.append({**record, "reject_reason": "caption score < 28"})
            else:
                captions.append(record)
        qscore = round(rng.gauss(27.0, 2.5), 3)
        question = {
            "id": f"q{i}",
            "image": str(image),
            "kind": "qa",
            "question": "What colour is the shape?",
            "answer_pos": "red",
            "answer_neg": "blue",
            "question_score": qscore,
            "clip_score": round(rng.gauss(29.0, 2.0), 3),
            "category": category,
        }
        scored.append(question)
        if qscore < 25.0:
            rejects.append({**question, "reject_reason": "question score < 25"})
        else:
            pairs.append(
                {
                    "id": f"pq{i}",
                    "image": str(image),
                    "kind": "qa",
                    "prompt": question["question"],
                    "chosen": "red",
                    "rejected": "blue",
                    "chosen_score": question["clip_score"],
                    "rejected_score": None,
                    "margin": None,
                    "from": [f"q{i}"],
                }
            )
        captions.sort(key=lambda r: -r["clip_score"])
        if len(captions) >= 2 and captions[0]["clip_score"] - captions[-1]["clip_score"] > 2.0:
            best, worst = captions[0], captions[-1]
            pairs.append(
                {
                    "id": f"p{i}",
                    "image": str(image),
                    "kind": "caption",
                    "prompt": "Describe the image.",
                    "chosen": best["text"],
                    "rejected": worst["text"],
                    "chosen_score": best["clip_score"],
                    "rejected_score": worst["clip_score"],
                    "margin": round(best["clip_score"] - worst["clip_score"], 6),
                    "from": [best["id"], worst["id"]],
                }
            )
        if i % 5 == 0:
            rejects.append(
                {
                    "id": f"x{i}",
                    "image": str(image),
                    "kind": "caption",
                    "text": "long " * 70,
                    "reject_reason": "caption > 60 words",
                }
            )
    paths = {
        "scored": _jsonl(root / "scored.jsonl", scored),
        "rejects": _jsonl(root / "rejects.jsonl", rejects),
        "pairs": _jsonl(root / "pairs.jsonl", pairs),
    }
    for name, steps, every in (("dpo", 40, 2), ("cdpo", 40, 4)):
        out = root / "train" / name
        (out / f"checkpoint-{steps}").mkdir(parents=True, exist_ok=True)
        state = trainer_state(steps, every)
        if name == "cdpo":
            for h in state["log_history"]:
                if "loss" in h:
                    h["loss"] = round(h["loss"] + 0.05 * math.sin(h["step"]), 4)
        (out / f"checkpoint-{steps}" / "trainer_state.json").write_text(json.dumps(state))
        paths[f"train_{name}"] = out
    for name, result in (
        ("amber_base", amber_result(7.8, 51.0, 36.4, 4.2, 74.7, "llava-hf/llava-1.5-7b-hf")),
        ("amber_dpo", amber_result(5.3, 50.2, 27.1, 2.5, 79.9, "out/llava-clipdpo")),
        ("amber_partial", amber_result(6.0, 49.0, 30.0, 3.0, 70.0, None, complete=False)),
    ):
        paths[name] = root / f"{name}.json"
        paths[name].write_text(json.dumps(result, indent=2))
    paths["zs_base"] = _jsonl(
        root / "zs_base.jsonl",
        zeroshot_lines("llava-hf/llava-1.5-7b-hf", [50.0, 60.0, 30.0], [80.0, 85.0, 45.0]),
    )
    paths["zs_dpo"] = _jsonl(
        root / "zs_dpo.jsonl", zeroshot_lines("out/llava-clipdpo", [55.0, 64.0, 33.0], [80.0, 85.0, 45.0])
    )
    return paths


def report_args(run: dict[str, Path], *, compare: bool = True) -> list[str]:
    """`clipdpo report` arguments for every file of `write_run`; `compare` adds the second training run,
    the partial AMBER result and the second zero-shot file (several models side by side)."""
    args = ["--scored", str(run["scored"]), "--rejects", str(run["rejects"]), "--pairs", str(run["pairs"]),
            "--train", str(run["train_dpo"])]  # fmt: skip
    if compare:
        args += ["--train", f"cdpo={run['train_cdpo']}"]
    args += ["--amber", f"base={run['amber_base']}", "--amber", str(run["amber_dpo"])]
    if compare:
        args += ["--amber", str(run["amber_partial"])]
    args += ["--zeroshot", str(run["zs_base"])]
    if compare:
        args += ["--zeroshot", str(run["zs_dpo"])]
    return args
