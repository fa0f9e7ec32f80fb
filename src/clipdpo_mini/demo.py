"""`make demo` on the miniature world: the trained models the project ships, and the demo's data.

The demo models (src/clipdpo_mini/demo_models/, package data) are the miniature world's trained ranker
(an open_clip local-dir checkpoint with its own small tokenizer) and its biased SFT captioner (a LLaVA
folder), built from the world generator with fixed seeds by one command:

    python -m clipdpo_mini demo-models [OUT]      # default: this package's demo_models/

with the settings repro-mini uses for its seed 0 (ReproSettings), and described in OUT/demo_models.json.
The folder also holds the tiny random LLM `clipdpo ask` runs with (taught one fixed reply; shipped so the
demo does not spend a CPU-minute building it; see examples/demo.sh for what happens to its questions).
`python -m clipdpo_mini demo-data OUT` writes what the demo reads besides them (prints shell variables):
a pool of scenes to caption, an AMBER-format folder of held-out scenes (repro-mini's *test* indices, not
the validation ones its recipe was chosen on), a one-object zero-shot set and the caption prompts.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

RANKER, CAPTIONER, LLM = "ranker", "captioner", "llm"
INFO = "demo_models.json"
WORLD_SEED = 0
HELD_OUT_START = 300_150  # repro-mini's held-out folder: 300_000 + 150 validation scenes, then the test ones
POOL_START = 200_000


def shipped_dir() -> str:
    """The folder of the demo models inside the installed package."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_models")


def shipped_models(folder: str | None = None) -> tuple[str, str]:
    """(`load_clip` name of the ranker, captioner folder) of the shipped demo models."""
    folder = folder or shipped_dir()
    ranker, captioner = os.path.join(folder, RANKER), os.path.join(folder, CAPTIONER)
    if not os.path.exists(os.path.join(captioner, "config.json")):
        from clipdpo_cli.io.errors import InputError

        command = "python -m clipdpo_mini demo-models"
        raise InputError(f"no demo models in {folder}: build them with `{command}`")
    return f"local-dir:{ranker}", captioner


def build_demo_models(out: str | None = None, work: str | None = None) -> dict[str, Any]:
    """Train the demo's ranker and SFT captioner from the world generator and write them to `out`.

    Settings and seeds: repro-mini's (ReproSettings: 6,000 ranker scenes, 500 ranker steps, 6,000 SFT
    scenes, 800 SFT steps, bias 0.7, seed 0). Also measures the ranker's insertion accuracy and writes
    everything to OUT/demo_models.json. `work` (default: a temporary folder) holds the training scenes.
    """
    from clipdpo_mini.captioner import train_captioner
    from clipdpo_mini.models.tiny_llm import DEMO_REPLY, build_tiny_llm
    from clipdpo_mini.ranker import insertion_accuracy, train_ranker
    from clipdpo_mini.repro import ReproSettings
    from clipdpo_mini.world import write_split

    out = os.path.abspath(out or shipped_dir())
    s = ReproSettings(out="")
    seed = 0
    started = time.time()
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        scenes = os.path.join(tmp, "scenes")
        ranker_scenes = write_split(os.path.join(scenes, "ranker"), s.n_ranker, WORLD_SEED, 0)
        sft_scenes = write_split(os.path.join(scenes, "sft"), s.n_sft, WORLD_SEED, 100_000)
        check = write_split(os.path.join(scenes, "check"), 150, WORLD_SEED, 300_000)  # repro-mini's val ids
        ranker_tmp, captioner_tmp = os.path.join(tmp, RANKER), os.path.join(tmp, CAPTIONER)
        name = train_ranker(ranker_scenes, ranker_tmp, steps=s.ranker_steps, seed=seed)
        accuracy = insertion_accuracy(name, check)
        scores = score_quantiles(name, check)
        train_captioner(sft_scenes, name, captioner_tmp, seed=seed, steps=s.sft_steps)
        llm_tmp = build_tiny_llm(os.path.join(tmp, LLM), reply=DEMO_REPLY, num_layers=1, seed=seed)
        os.makedirs(out, exist_ok=True)
        for part, src in ((RANKER, ranker_tmp), (CAPTIONER, captioner_tmp), (LLM, llm_tmp)):
            shutil.rmtree(os.path.join(out, part), ignore_errors=True)
            shutil.copytree(src, os.path.join(out, part))
    for part in (RANKER, CAPTIONER):  # the training marks named the temporary folder
        mark = os.path.join(out, part, "mini_ranker.json" if part == RANKER else "mini_sft.json")
        with open(mark, encoding="utf-8") as fh:
            info = json.load(fh)
        info.pop("ranker", None)
        with open(mark, "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=1)
    info = {
        "command": "python -m clipdpo_mini demo-models",
        "world_seed": WORLD_SEED,
        "ranker": {"scenes": s.n_ranker, "scene_indices": [0, s.n_ranker], "steps": s.ranker_steps,
                   "batch_size": 128, "seed": seed,
                   "insertion_accuracy": round(accuracy, 4), "check_scenes": len(check),
                   "score_quantiles": scores},
        "captioner": {"scenes": s.n_sft, "scene_indices": [100_000, 100_000 + s.n_sft], "steps": s.sft_steps,
                      "batch_size": 32, "bias": 0.7, "seed": seed,
                      "vision_tower": "copied from the ranker's image encoder"},
        "llm": {"what": "a tiny random Llama (1 layer) taught to answer every chat with "
                        "clipdpo_mini.models.tiny_llm DEMO_REPLY, for `clipdpo ask` (there is no trained "
                        "miniature LLM)", "seed": seed},
        "build_seconds": round(time.time() - started),
        "bytes": {part: _size(os.path.join(out, part)) for part in (RANKER, CAPTIONER, LLM)},
    }  # fmt: skip
    with open(os.path.join(out, INFO), "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=1)
        fh.write("\n")
    return info


def score_quantiles(ranker: str, manifest: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """The ranker's scores (100 x cosine, as `clipdpo score` writes them) of the scenes' true captions and
    of the same captions with one absent object inserted: min, 5th, 50th and 95th percentiles (what the
    demo's filter threshold is set against)."""
    import random

    import torch

    from clipdpo_cli.models.clip import load_clip
    from clipdpo_mini.ranker import insertion_caption, pixel_tensor

    clip = load_clip(ranker, device="cpu")
    rng = random.Random(seed)
    img = clip.encode_pixels(pixel_tensor([r["image"] for r in manifest], clip.preprocess))
    out = {}
    for key, texts in (("true", [r["caption"] for r in manifest]),
                       ("inserted", [insertion_caption(r, rng) for r in manifest])):  # fmt: skip
        with torch.inference_mode():
            values = sorted((100 * (img * clip.encode_texts(texts)).sum(-1)).tolist())
        out[key] = {f"p{q}": round(values[round(q / 100 * (len(values) - 1))], 1) for q in (0, 5, 50, 95)}
    return out


def _size(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)


@dataclass(frozen=True)
class DemoData:
    ranker: str  # local-dir:... of the shipped ranker
    captioner: str  # the shipped SFT captioner (LLaVA folder)
    llm: str  # the shipped tiny random LLM with one fixed reply, `ask` runs with
    pool: str  # folder of scenes to caption (+ scenes.jsonl)
    amber: str  # AMBER-layout folder of held-out scenes (+ scenes.jsonl)
    zeroshot: str  # ImageFolder layout: one folder per object kind, one-object scenes
    templates: str  # zero-shot class prompts in the world's caption style ("a red {c}.", ...)
    prompts: str  # the world's caption prompts

    def shell(self) -> str:
        return "\n".join(f"{k.upper()}={shlex.quote(v)}" for k, v in asdict(self).items())


def build_demo_data(out: str, n_pool: int = 120, n_held_out: int = 100, per_class: int = 3) -> DemoData:
    """Write (or reuse) the demo's scenes under out/ and name the shipped models."""
    from clipdpo_mini.world import COLOURS, write_amber_split, write_prompts, write_split

    ranker, captioner = shipped_models()
    llm = os.path.join(shipped_dir(), LLM)
    pool, amber, zeroshot = (os.path.join(out, n) for n in ("pool", "amber", "zeroshot"))
    if not os.path.exists(os.path.join(pool, "scenes.jsonl")):
        write_split(pool, n_pool, WORLD_SEED, POOL_START)
    if not os.path.exists(os.path.join(amber, "scenes.jsonl")):
        write_amber_split(amber, n_held_out, WORLD_SEED, HELD_OUT_START)
    if not os.path.isdir(zeroshot):
        write_zeroshot_set(zeroshot, per_class)
    templates = os.path.join(out, "templates.txt")
    with open(templates, "w", encoding="utf-8") as fh:
        fh.write("# the world's caption style, one per colour\n")
        fh.writelines(f"a {colour} {{c}}.\n" for colour in COLOURS)
    prompts = write_prompts(os.path.join(out, "prompts.txt"))
    return DemoData(ranker, captioner, llm, pool, amber, zeroshot, templates, prompts)


def write_zeroshot_set(out_dir: str, per_class: int, start: int = 400_000) -> None:
    """An ImageFolder set of one-object world scenes, `per_class` per object kind (class = the kind)."""
    from clipdpo_mini.world import KINDS, draw_scene, sample_scene

    counts = dict.fromkeys(KINDS, 0)
    index = start
    while min(counts.values()) < per_class:
        scene = sample_scene(index, WORLD_SEED)
        index += 1
        (kind,) = scene.kinds if len(scene.items) == 1 else (None,)
        if kind is None or counts[kind] >= per_class:
            continue
        os.makedirs(os.path.join(out_dir, kind), exist_ok=True)
        draw_scene(scene).save(os.path.join(out_dir, kind, f"{kind}_{counts[kind]}.png"))
        counts[kind] += 1


def main_data(out: str) -> None:
    """Print the demo data's shell variables on stdout (libraries' logging goes to stderr)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        data = build_demo_data(out)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    print(data.shell())


def compare(before: dict[str, Any], after: dict[str, Any], before_words: float, after_words: float) -> str:
    """One line: AMBER generative metrics and mean response length before -> after (relative changes)."""

    def part(name: str, a: float, b: float, unit: str = "") -> str:
        change = f" ({(b - a) / a:+.0%})" if a else ""
        return f"{name} {a:g} -> {b:g}{unit}{change}"

    g0, g1 = before["generative"], after["generative"]
    n = g1.get("counts", {}).get("responses", "?")
    return (
        f"AMBER generative, {n} held-out scenes, before (SFT) -> after (CLIP-DPO): "
        + " | ".join([part("CHAIR", g0["CHAIR"], g1["CHAIR"]), part("Cover", g0["Cover"], g1["Cover"]),
                      part("Hal", g0["Hal"], g1["Hal"]),
                      part("length", round(before_words, 2), round(after_words, 2), " words")])
    )  # fmt: skip


def mean_words(responses: str) -> float:
    """Mean length in words of an eval-amber responses file's responses."""
    with open(responses, encoding="utf-8") as fh:
        texts = [json.loads(line)["response"] for line in fh if line.strip()]
    return sum(len(t.split()) for t in texts) / max(1, len(texts))


def main_compare(before: str, after: str, before_responses: str, after_responses: str) -> None:
    with open(before, encoding="utf-8") as fh:
        b = json.load(fh)
    with open(after, encoding="utf-8") as fh:
        a = json.load(fh)
    print(compare(b, a, mean_words(before_responses), mean_words(after_responses)))
