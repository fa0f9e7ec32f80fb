"""`make repro-mini`: the CLIP-DPO method on the miniature world, through the real `clipdpo` commands.

Per SFT seed: train the biased captioner, then

    caption POOL | score (ranker) --categorize | filter | pair          -> pairs
    train (each arm) ; eval-amber --task generative on the held-out val and test splits   -> metrics

Arms: the candidate CLIP-DPO recipes (DPO + an SFT term on the chosen, and the paper's plain DPO, beta 0.1),
and controls trained with the recipe selected on the validation split (CONTROLS; docs/reproducing.md says
why each is fair): random pairs (the base's two samples of an image under a random prompt, coin order),
self-preference (the base model's greedy caption preferred to a coin-picked caption of the pair), a
random-weights ranker (the default three), random preference (every pair in both orders) and two older
designs kept for comparison. With rounds >= 2, examples/iterate.sh continues from the selected model
(round 1) for further rounds. The table reports the test split. Layout of OUT (see docs/reproducing.md):

    world/{ranker,sft,pool}/   scenes (+ scenes.jsonl);  world/heldout/  AMBER folder: val ids, then test
    models/{ranker,ranker-random,sft-seedS}/
    seedS/captions.jsonl
    seedS/{ranker,ranker-random}/{scored,filtered,pairs}.jsonl (+ agreement.json)
    seedS/greedy.jsonl (the base's greedy captions of the pool, for self-preference)
    seedS/controls/ARM-pairs.jsonl  (each control's training pairs)
    seedS/ARM/{model/,train-summary.json}
    seedS/rounds/roundR/ (examples/iterate.sh, R >= 2) and seedS/roundR/ (its evaluation)
    seedS/base/ and seedS/ARM/eval/: responses.jsonl, responses-{val,test}.jsonl, amber-{val,test}.json
    seedS/selection.json   table.json  table.png  table.txt
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from clipdpo_mini.truth import mentions, pair_agreement


@dataclass(frozen=True)
class Recipe:
    name: str
    loss: str
    beta: float
    lr: float = 5e-5
    epochs: float = 2.0


@dataclass
class ReproSettings:
    out: str
    seeds: tuple[int, ...] = (0, 1, 2)
    n_ranker: int = 6000
    n_sft: int = 6000
    n_pool: int = 600
    n_val: int = 150
    n_test: int = 250
    ranker_steps: int = 500
    sft_steps: int = 800
    samples_per_prompt: int = 2
    max_new_tokens: int = 40
    min_caption_score: float = 20.0
    per_image: int = 3
    min_margin: float = 2.0
    max_length_diff: float = 0.6
    batch_size: int = 16
    candidates: tuple[Recipe, ...] = field(default_factory=lambda: (
        Recipe("clip-dpo+sft", "dpo,sft", 0.1),
        Recipe("clip-dpo", "dpo", 0.1),
    ))  # fmt: skip
    controls: tuple[str, ...] = ("random-pairs", "self-preference", "random-ranker")
    rounds: int = 1  # >= 2: further rounds from the selected model, by examples/iterate.sh
    world_seed: int = 0
    jobs: int = 3  # seeds run side by side (each command single-threaded by OMP_NUM_THREADS=1)


def _log(msg: str) -> None:
    print(f"[repro-mini {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def clipdpo(*args: str, stdout: str | None = None, stdin: str | None = None) -> None:
    """Run a real `clipdpo` command (this interpreter's package), stdout/stdin to/from files."""
    cmd = [sys.executable, "-m", "clipdpo_cli", *args]
    _log("clipdpo " + " ".join(shlex.quote(a) for a in args)
         + (f" < {stdin}" if stdin else "") + (f" > {stdout}" if stdout else ""))  # fmt: skip
    fin = open(stdin, "rb") if stdin else None  # noqa: SIM115
    fout = open(stdout, "wb") if stdout else None  # noqa: SIM115
    try:
        subprocess.run(cmd, check=True, stdin=fin, stdout=fout)
    finally:
        for fh in (fin, fout):
            if fh:
                fh.close()


def mini(*args: str) -> None:
    """Run a world-building step (`python -m clipdpo_mini ...`) in its own process."""
    _log("python -m clipdpo_mini " + " ".join(shlex.quote(a) for a in args))
    subprocess.run([sys.executable, "-m", "clipdpo_mini", *args], check=True)


def _done(path: str) -> bool:
    return os.path.exists(path) and os.path.getsize(path) > 0


def build_world(s: ReproSettings) -> dict[str, str]:
    """Scenes for the ranker, SFT and the pool, and one AMBER folder of held-out scenes whose first
    n_val are the validation split and the next n_test the test split (scored separately)."""
    from clipdpo_mini.world import write_amber_split, write_prompts, write_split

    w = os.path.join(s.out, "world")
    os.makedirs(w, exist_ok=True)
    paths = {k: os.path.join(w, k) for k in ("ranker", "sft", "pool", "heldout")}
    starts = {"ranker": 0, "sft": 100_000, "pool": 200_000, "heldout": 300_000}
    sizes = {"ranker": s.n_ranker, "sft": s.n_sft, "pool": s.n_pool}
    for key, path in paths.items():
        if _done(os.path.join(path, "scenes.jsonl")):
            continue
        if key == "heldout":
            write_amber_split(path, s.n_val + s.n_test, s.world_seed, starts[key],
                              splits={"val": s.n_val, "test": s.n_test})  # fmt: skip
        else:
            write_split(path, sizes[key], s.world_seed, starts[key])
    paths["prompts"] = write_prompts(os.path.join(w, "prompts.txt"))
    return paths


def build_rankers(s: ReproSettings, world: dict[str, str]) -> dict[str, str]:
    from clipdpo_mini.ranker import TRAINED_MARK, insertion_accuracy, train_ranker, write_ranker
    from clipdpo_mini.world import read_manifest

    models = os.path.join(s.out, "models")
    trained, rand = os.path.join(models, "ranker"), os.path.join(models, "ranker-random")
    if not _done(os.path.join(trained, TRAINED_MARK)):
        _log(f"training the ranker ({s.ranker_steps} steps on {s.n_ranker} scenes)")
        train_ranker(read_manifest(world["ranker"]), trained, steps=s.ranker_steps)
    if not _done(os.path.join(rand, "open_clip_model.safetensors")):
        write_ranker(rand, seed=1)
    names = {
        "ranker": f"local-dir:{os.path.abspath(trained)}",
        "ranker-random": f"local-dir:{os.path.abspath(rand)}",
    }
    acc_path = os.path.join(models, "ranker-accuracy.json")
    if not _done(acc_path):
        val = [r for r in read_manifest(world["heldout"]) if r["split"] == "val"]
        acc = {k: insertion_accuracy(v, val) for k, v in names.items()}
        _write_json(acc_path, acc)
    return names


def _write_json(path: str, value: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(value, fh, indent=1)


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _read_jsonl(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def make_pairs(
    s: ReproSettings, captions: str, ranker: str, folder: str, scenes: dict, min_score: str
) -> str:
    """score | filter | pair with the real commands; also the agreement of the pairs with the truth."""
    os.makedirs(folder, exist_ok=True)
    scored, kept, pairs = (os.path.join(folder, f) for f in ("scored.jsonl", "filtered.jsonl", "pairs.jsonl"))
    if not _done(scored):
        clipdpo("score", captions, "--model", ranker, "--categorize", "--workers", "0", "-q", "-o", scored)
    if not _done(kept):
        # every image of this world is a plain drawing: categories carry no meaning, keep them all
        clipdpo("filter", scored, "--min-caption-score", min_score, "--text-keep", "1",
                "--rejects", os.path.join(folder, "rejects.jsonl"), "-o", kept)  # fmt: skip
    if not _done(pairs):
        clipdpo("pair", kept, "--per-image", str(s.per_image), "--min-margin", str(s.min_margin),
                "--max-length-diff", str(s.max_length_diff), "-o", pairs)  # fmt: skip
    _write_json(os.path.join(folder, "agreement.json"), pair_agreement(_read_jsonl(pairs), scenes))
    return pairs


def swap_pairs(pairs: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The random-preference control: each pair's chosen and rejected swapped with probability 1/2."""
    import random

    rng = random.Random(f"mini-swap:{seed}")
    out = []
    for pair in pairs:
        if rng.random() < 0.5:
            pair = {**pair, "chosen": pair["rejected"], "rejected": pair["chosen"]}
        out.append(pair)
    return out


def both_orders(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The random-preference control: every pair once as it is and once swapped. The DPO term's
    preference cancels exactly (its gradient at policy = reference is zero and it pulls every margin back
    to 0), and the SFT term trains on both captions of a pair, so on a caption chosen without the
    preference. Trained for half the recipe's epochs: the same number of updates on the same captions."""
    out = []
    for pair in pairs:
        out.append(pair)
        out.append({**pair, "id": f"{pair['id']}-swapped", "chosen": pair["rejected"],
                    "rejected": pair["chosen"]})  # fmt: skip
    return out


def self_preference(
    pairs: list[dict[str, Any]], greedy: dict[tuple[str, str], str], seed: int
) -> list[dict[str, Any]]:
    """The self-preference control: per pair, the base model's own greedy caption of that image and prompt
    as the chosen, and one of the pair's two captions picked by a coin (not by the ranker) as the
    rejected. The SFT term trains on what the model already says, and the DPO term prefers the model's
    mode to one of its own samples: no ranker in it, so greedy decoding should not move."""
    import random

    rng = random.Random(f"mini-self:{seed}")
    out = []
    for pair in pairs:
        other = pair["chosen"] if rng.random() < 0.5 else pair["rejected"]
        out.append({**pair, "chosen": greedy[(pair["image"], pair["prompt"])], "rejected": other})
    return out


def random_pairs(
    pairs: list[dict[str, Any]], captions: list[dict[str, Any]], seed: int
) -> list[dict[str, Any]]:
    """The random-pairs control: per pair of the ranker's, two of the captions the base model sampled for
    that image under one prompt drawn at random (not the pair's prompt: with two samples per prompt, the
    pair's prompt would bring back its chosen caption half the time), in an order a coin picks. No ranker
    chooses the captions or their order, so the SFT term fits the model's own unselected samples (whose
    expected log-likelihood gradient is zero) and the DPO term a coin."""
    import random

    rng = random.Random(f"mini-random-pairs:{seed}")
    by_image: dict[str, dict[str, list[str]]] = {}
    for record in captions:
        if not record["text"].strip():  # nothing to train on (pair drops empty captions too)
            continue
        by_image.setdefault(record["image"], {}).setdefault(record["prompt"], []).append(record["text"])
    out = []
    for pair in pairs:
        prompts = by_image[pair["image"]]
        usable = sorted(p for p, texts in prompts.items() if len(texts) >= 2)
        if usable:
            prompt = rng.choice(usable)
            first, second = rng.sample(prompts[prompt], 2)
        else:  # one sample per prompt: two of the image's captions, each with its own prompt
            prompt, other = rng.sample(sorted(prompts), 2)
            first, second = prompts[prompt][0], prompts[other][0]
        out.append({"id": pair["id"], "image": pair["image"], "kind": pair.get("kind", "caption"),
                    "prompt": prompt, "chosen": first, "rejected": second})  # fmt: skip
    return out


@dataclass(frozen=True)
class Control:
    """A control arm: its pairs (by `pairs`, from the ranker's pairs) and how it changes the recipe."""

    name: str
    pairs: str  # both-orders | random-pairs | self-preference | swapped | random-ranker
    loss: str | None = None  # None: the selected recipe's
    epochs_factor: float = 1.0
    doc: str = ""


CONTROLS = {
    c.name: c
    for c in (
        Control("random-preference", "both-orders", epochs_factor=0.5,
                doc="every pair in both orders, half the epochs"),
        Control("random-pairs", "random-pairs", doc="two base samples, random prompt, coin order"),
        Control("self-preference", "self-preference", doc="base greedy caption > a coin-picked caption"),
        Control("random-ranker", "random-ranker", doc="pairs by an untrained ranker"),
        Control("random-swap", "swapped", doc="(earlier design) each pair swapped with probability 1/2"),
        Control("random-swap-dpo", "swapped", loss="dpo", doc="(DPO only) swapped pairs, no SFT term"),
    )
}  # fmt: skip


def greedy_captions(s: ReproSettings, base: str, world: dict[str, str], sd: str, seed: int) -> str:
    path = os.path.join(sd, "greedy.jsonl")
    if not _done(path):
        clipdpo("caption", world["pool"], "--model", base, "--prompts", world["prompts"],
                "--temperature", "0", "--max-new-tokens", str(s.max_new_tokens), "--seed", str(seed),
                "--batch-size", "80", "--workers", "0", "-q", "-o", path + ".part")  # fmt: skip
        os.replace(path + ".part", path)
    return path


def control_pairs(
    s: ReproSettings,
    control: Control,
    sd: str,
    pairs: dict[str, str],
    base: str,
    world: dict[str, str],
    seed: int,
) -> str:
    """The training pairs of one control arm, written once to seedS/controls/ARM-pairs.jsonl."""
    if control.pairs == "random-ranker":
        return pairs["ranker-random"]
    path = os.path.join(sd, "controls", f"{control.name}-pairs.jsonl")
    if _done(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ranked = _read_jsonl(pairs["ranker"])
    if control.pairs == "both-orders":
        rows = both_orders(ranked)
    elif control.pairs == "swapped":
        rows = swap_pairs(ranked, seed)
    elif control.pairs == "random-pairs":
        rows = random_pairs(ranked, _read_jsonl(os.path.join(sd, "captions.jsonl")), seed)
    else:
        greedy = {(r["image"], r["prompt"]): r["text"]
                  for r in _read_jsonl(greedy_captions(s, base, world, sd, seed))}  # fmt: skip
        rows = self_preference(ranked, greedy, seed)
    with open(path + ".part", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(p) + "\n" for p in rows)
    os.replace(path + ".part", path)
    return path


def train_arm(s: ReproSettings, recipe: Recipe, pairs: str, base: str, folder: str, seed: int) -> str:
    model = os.path.join(folder, "model")
    os.makedirs(folder, exist_ok=True)
    if not _done(os.path.join(model, "config.json")):
        clipdpo("train", pairs, "--model", base, "--output-dir", model, "--loss", recipe.loss,
                "--beta", str(recipe.beta), "--learning-rate", str(recipe.lr), "--epochs", str(recipe.epochs),
                "--batch-size", str(s.batch_size), "--per-device-batch-size", str(s.batch_size),
                "--warmup-ratio", "0.05", "--no-gradient-checkpointing", "--save-steps", "100000",
                "--logging-steps", "50", "--seed", str(seed),
                stdout=os.path.join(folder, "train-summary.json"))  # fmt: skip
    return model


def evaluate(
    s: ReproSettings,
    model: str,
    world: dict[str, str],
    folder: str,
    splits: tuple[str, ...] = ("val", "test"),
) -> dict[str, dict[str, Any]]:
    """eval-amber --generate-only on the held-out folder, then eval-amber --responses per split (the
    official counting on that split's ids); adds the mean response length in words."""
    from clipdpo_mini.world import read_manifest

    os.makedirs(folder, exist_ok=True)
    responses = os.path.join(folder, "responses.jsonl")
    rows = read_manifest(world["heldout"])
    done = {r["id"] for r in _read_jsonl(responses)} if _done(responses) else set()
    if len(done) < len(rows):
        clipdpo("eval-amber", "--model", model, "--amber-root", world["heldout"], "--task", "generative",
                "--generate-only", "--max-new-tokens", str(s.max_new_tokens), "--batch-size", "50", "-q",
                "-r", responses, "--resume")  # fmt: skip
    by_id = {r["id"]: r for r in _read_jsonl(responses)}
    out = {}
    for split in splits:
        ids = [r["id"] for r in rows if r["split"] == split]
        part = os.path.join(folder, f"responses-{split}.jsonl")
        with open(part, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(by_id[i]) + "\n" for i in ids)
        result_path = os.path.join(folder, f"amber-{split}.json")
        # the folder holds both splits: each split's responses are, on purpose, a part of its queries
        clipdpo("eval-amber", "--responses", part, "--amber-root", world["heldout"], "--task", "generative",
                "--allow-partial", "-q", "-o", result_path)  # fmt: skip
        gen = _read_json(result_path)["generative"]
        texts = [by_id[i]["response"] for i in ids]
        out[split] = {
            "CHAIR": gen["CHAIR"], "Cover": gen["Cover"], "Hal": gen["Hal"], "Cog": gen.get("Cog"),
            "length": round(statistics.fmean(len(t.split()) for t in texts), 3),
            "mentions": round(statistics.fmean(len(mentions(t)) for t in texts), 3),
        }  # fmt: skip
    return out


def select(base: dict[str, Any], val: dict[str, dict[str, Any]]) -> str:
    """The candidate with the lowest validation CHAIR among those keeping Cover within 5% and length
    within 15% of the base (the issue's targets); the lowest CHAIR overall if none does."""
    ok = [
        name for name, m in val.items()
        if m["Cover"] >= 0.95 * base["Cover"] and abs(m["length"] / base["length"] - 1) <= 0.15
    ]  # fmt: skip
    pool = ok or list(val)
    return min(pool, key=lambda name: val[name]["CHAIR"])


def run_seed(s: ReproSettings, seed: int, world: dict[str, str], rankers: dict[str, str]) -> dict[str, Any]:
    from clipdpo_mini.captioner import TRAINED_MARK
    from clipdpo_mini.world import read_manifest, scenes_by_image

    sd = os.path.join(s.out, f"seed{seed}")
    os.makedirs(sd, exist_ok=True)
    base = os.path.join(s.out, "models", f"sft-seed{seed}")
    if not _done(os.path.join(base, TRAINED_MARK)):
        _log(f"seed {seed}: SFT captioner ({s.sft_steps} steps on {s.n_sft} biased captions)")
        mini("captioner", world["sft"], rankers["ranker"], base, "--seed", str(seed),
             "--steps", str(s.sft_steps))  # fmt: skip
    captions = os.path.join(sd, "captions.jsonl")
    if not _done(captions):
        clipdpo("caption", world["pool"], "--model", base, "--prompts", world["prompts"],
                "--samples-per-prompt", str(s.samples_per_prompt), "--temperature", "1", "--top-p", "1",
                "--max-new-tokens", str(s.max_new_tokens), "--seed", str(seed), "--batch-size", "80",
                "--workers", "0", "-q", "-o", captions)  # fmt: skip
    scenes = scenes_by_image(read_manifest(world["pool"]))
    # The score threshold is on the trained ranker's scale; a random ranker's scores (100 x cosine of
    # random embeddings) sit near 0, so its control keeps every caption and relies on the pair margin.
    thresholds = {"ranker": str(s.min_caption_score), "ranker-random": "none"}
    pairs = {
        name: make_pairs(s, captions, r, os.path.join(sd, name), scenes, thresholds[name])
        for name, r in rankers.items()
    }
    agreement = {
        "ranker": _read_json(os.path.join(sd, "ranker", "agreement.json")),
        "ranker-random": _read_json(os.path.join(sd, "ranker-random", "agreement.json")),
    }
    metrics: dict[str, dict[str, Any]] = {"base": evaluate(s, base, world, os.path.join(sd, "base"))}
    for recipe in s.candidates:
        model = train_arm(s, recipe, pairs["ranker"], base, os.path.join(sd, recipe.name), seed)
        metrics[recipe.name] = evaluate(s, model, world, os.path.join(sd, recipe.name, "eval"))
    chosen = select(metrics["base"]["val"], {r.name: metrics[r.name]["val"] for r in s.candidates})
    recipe = next(r for r in s.candidates if r.name == chosen)
    _write_json(os.path.join(sd, "selection.json"), {"selected": chosen, "recipe": asdict(recipe),
                "val": {k: v["val"] for k, v in metrics.items()}})  # fmt: skip
    _log(f"seed {seed}: selected {chosen} on the validation split")
    pair_counts = {arm: agreement["ranker"] for arm in (r.name for r in s.candidates)}
    for name in s.controls:
        control = CONTROLS[name]
        arm_pairs = control_pairs(s, control, sd, pairs, base, world, seed)
        arm_recipe = Recipe(name, control.loss or recipe.loss, recipe.beta, recipe.lr,
                            recipe.epochs * control.epochs_factor)  # fmt: skip
        model = train_arm(s, arm_recipe, arm_pairs, base, os.path.join(sd, name), seed)
        metrics[name] = evaluate(s, model, world, os.path.join(sd, name, "eval"))
        pair_counts[name] = pair_agreement(_read_jsonl(arm_pairs), scenes)
    for r, folder in run_rounds(s, seed, recipe, os.path.join(sd, chosen, "model"), world, rankers, sd):
        metrics[f"round{r}"] = evaluate(
            s, os.path.join(folder, "model"), world, os.path.join(sd, f"round{r}")
        )
        pair_counts[f"round{r}"] = pair_agreement(_read_jsonl(os.path.join(folder, "pairs.jsonl")), scenes)
    return {"seed": seed, "selected": chosen, "metrics": metrics, "pairs": pair_counts}


def run_rounds(
    s: ReproSettings,
    seed: int,
    recipe: Recipe,
    round1: str,
    world: dict[str, str],
    rankers: dict[str, str],
    sd: str,
) -> list[tuple[int, str]]:
    """Rounds 2..s.rounds by examples/iterate.sh (the selected arm is round 1): each round captions with
    the previous round's model and trains from it, with it as the reference, with the world's settings."""
    if s.rounds < 2:
        return []
    out = os.path.join(sd, "rounds")
    script = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "iterate.sh")
    if not os.path.isfile(script):  # an installed package: the script of the source tree it runs from
        script = os.path.join(os.getcwd(), "examples", "iterate.sh")
    env = {
        **os.environ, "MODEL": round1, "IMAGES": world["pool"], "OUT": out, "FIRST_ROUND": "2",
        "ROUNDS": str(s.rounds), "RANKER": rankers["ranker"], "SEED": str(seed), "PYTHON": sys.executable,
        "CAPTION_ARGS": f"--prompts {world['prompts']} --samples-per-prompt {s.samples_per_prompt} "
                        f"--temperature 1 --top-p 1 --max-new-tokens {s.max_new_tokens} --batch-size 80 "
                        "--workers 0",
        "SCORE_ARGS": "--categorize --workers 0",
        "FILTER_ARGS": f"--min-caption-score {s.min_caption_score} --text-keep 1",
        "PAIR_ARGS": f"--per-image {s.per_image} --min-margin {s.min_margin} "
                     f"--max-length-diff {s.max_length_diff}",
        "TRAIN_ARGS": f"--loss {recipe.loss} --beta {recipe.beta} --learning-rate {recipe.lr} "
                      f"--epochs {recipe.epochs} --batch-size {s.batch_size} --per-device-batch-size "
                      f"{s.batch_size} --warmup-ratio 0.05 --no-gradient-checkpointing --save-steps 100000 "
                      f"--logging-steps 50 --seed {seed} -q",
    }  # fmt: skip
    env.pop("AMBER_ROOT", None)  # evaluated here, per split
    _log(f"seed {seed}: rounds 2-{s.rounds} by examples/iterate.sh -> {out}")
    bindir = os.path.dirname(sys.executable)  # `clipdpo` of this interpreter
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    subprocess.run(["bash", os.path.abspath(script)], check=True, env=env)
    return [(r, os.path.join(out, f"round{r}")) for r in range(2, s.rounds + 1)]


ARMS = (
    "base",
    "clip-dpo+sft",
    "clip-dpo",
    "selected",
    "random-preference",
    "self-preference",
    "random-ranker",
)


def arms_of(s: ReproSettings) -> tuple[str, ...]:
    """The table's rows: the base, the candidates, the selected one, the controls, further rounds."""
    rounds = tuple(f"round{r}" for r in range(2, s.rounds + 1))
    return ("base", *(c.name for c in s.candidates), "selected", *s.controls, *rounds)


COLUMNS = ("CHAIR", "Cover", "Hal", "length")


def summarise(
    seeds: list[dict[str, Any]], split: str = "test", arms: tuple[str, ...] = ARMS
) -> dict[str, Any]:
    """Per arm and metric over seeds: values, mean, sd, and the change relative to each seed's base."""
    table: dict[str, Any] = {}
    for arm in arms:
        rows = []
        for r in seeds:
            name = r["selected"] if arm == "selected" else arm
            if name not in r["metrics"]:
                continue
            m, b = r["metrics"][name][split], r["metrics"]["base"][split]
            rel = {f"{k}_rel": round(m[k] / b[k] - 1, 4) if b[k] else None for k in COLUMNS}
            agree = None if arm == "base" else r["pairs"][name]["agreement"]
            n_pairs = None if arm == "base" else r["pairs"][name]["pairs"]
            rows.append({**{k: m[k] for k in COLUMNS}, **rel, "agreement": agree, "pairs": n_pairs,
                         "seed": r["seed"]})  # fmt: skip
        if not rows:
            continue
        stats = {}
        for key in (*COLUMNS, *(f"{k}_rel" for k in COLUMNS), "agreement", "pairs"):
            vals = [x[key] for x in rows if x[key] is not None]
            if vals:
                stats[key] = {"mean": round(statistics.fmean(vals), 4),
                              "sd": round(statistics.stdev(vals), 4) if len(vals) > 1 else 0.0,
                              "values": vals}  # fmt: skip
        table[arm] = {"per_seed": rows, "stats": stats}
    return table


def targets(table: dict[str, Any], controls: tuple[str, ...] = ("random-pairs",)) -> dict[str, Any]:
    """The issues' targets, checked on the test split: the selected recipe's drop, every control's mean
    CHAIR change within 20% of the base, and whether round 2 lowers CHAIR below round 1's."""
    sel = table["selected"]["stats"]
    drop = -sel["CHAIR_rel"]["mean"]
    out: dict[str, Any] = {
        "chair_drop_mean_ge_50pct": drop >= 0.5,
        "chair_drop_each_seed_ge_30pct": all(v <= -0.3 for v in sel["CHAIR_rel"]["values"]),
        "cover_within_5pct": abs(sel["Cover_rel"]["mean"]) <= 0.05,
        "length_within_15pct": abs(sel["length_rel"]["mean"]) <= 0.15,
        "controls_change_lt_fifth_of_drop": {
            name: abs(table[name]["stats"]["CHAIR_rel"]["mean"]) < drop / 5
            for name in controls
            if name in table
        },
        "controls_within_20pct": {
            name: abs(table[name]["stats"]["CHAIR_rel"]["mean"]) <= 0.2 for name in controls if name in table
        },
    }
    if "round2" in table:
        out["round2_chair_below_round1"] = table["round2"]["stats"]["CHAIR"]["mean"] < sel["CHAIR"]["mean"]
    return out


def format_table(table: dict[str, Any]) -> str:
    def cell(stats: dict[str, Any], key: str, pct: bool = False) -> str:
        if key not in stats:
            return "-"
        m, sd = stats[key]["mean"], stats[key]["sd"]
        return f"{100 * m:+.0f}% ±{100 * sd:.0f}" if pct else f"{m:.1f} ±{sd:.1f}"

    head = f"{'arm':<18} {'CHAIR':>11} {'dCHAIR':>10} {'Cover':>11} {'dCover':>9} {'Hal':>11} " \
           f"{'length':>10} {'dlen':>8} {'agree':>6} {'pairs':>6}"  # fmt: skip
    lines = [head, "-" * len(head)]
    for arm, row in table.items():
        st = row["stats"]
        agree = f"{st['agreement']['mean']:.2f}" if "agreement" in st else "-"
        pairs = f"{st['pairs']['mean']:.0f}" if "pairs" in st else "-"
        lines.append(
            f"{arm:<18} {cell(st, 'CHAIR'):>11} {cell(st, 'CHAIR_rel', True):>10} {cell(st, 'Cover'):>11} "
            f"{cell(st, 'Cover_rel', True):>9} {cell(st, 'Hal'):>11} {cell(st, 'length'):>10} "
            f"{cell(st, 'length_rel', True):>8} {agree:>6} {pairs:>6}"
        )
    return "\n".join(lines)


def plot(table: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(table)
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    for ax, key in zip(axes, COLUMNS, strict=True):
        means = [table[a]["stats"][key]["mean"] for a in arms]
        sds = [table[a]["stats"][key]["sd"] for a in arms]
        ax.bar(range(len(arms)), means, yerr=sds, capsize=3, color=["grey", *["C0"] * (len(arms) - 1)])
        for i, a in enumerate(arms):
            ax.scatter([i] * len(table[a]["stats"][key]["values"]), table[a]["stats"][key]["values"],
                       s=8, color="k", zorder=3)  # fmt: skip
        ax.set_xticks(range(len(arms)), arms, rotation=35, ha="right", fontsize=8)
        ax.set_title(key + (" (words)" if key == "length" else ""))
    fig.suptitle("CLIP-DPO on the miniature world (test split; mean ± sd over SFT seeds, dots: seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(s: ReproSettings) -> dict[str, Any]:
    started = time.time()
    os.makedirs(s.out, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    world = build_world(s)
    rankers = build_rankers(s, world)
    import threading
    from concurrent.futures import ThreadPoolExecutor

    failed = threading.Event()  # a failed seed stops the others from starting (rerun to resume)

    def one(seed: int) -> dict[str, Any] | None:
        if failed.is_set():
            return None
        try:
            result = run_seed(s, seed, world, rankers)
        except BaseException:
            failed.set()
            raise
        _write_json(os.path.join(s.out, f"seed{seed}", "result.json"), result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, s.jobs)) as pool:
        seeds = [r for r in pool.map(one, s.seeds) if r is not None]
    arms = arms_of(s)
    table = summarise(seeds, "test", arms)
    result = {
        "settings": {**asdict(s), "candidates": [asdict(r) for r in s.candidates]},
        "ranker_insertion_accuracy": _read_json(os.path.join(s.out, "models", "ranker-accuracy.json")),
        "test": table, "val": summarise(seeds, "val", arms), "targets": targets(table, s.controls),
        "selected": {r["seed"]: r["selected"] for r in seeds}, "seconds": round(time.time() - started, 1),
    }  # fmt: skip
    _write_json(os.path.join(s.out, "table.json"), result)
    text = format_table(table)
    with open(os.path.join(s.out, "table.txt"), "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    plot(table, os.path.join(s.out, "table.png"))
    print(text)
    print(json.dumps({"targets": result["targets"], "selected": result["selected"],
                      "seconds": result["seconds"]}))  # fmt: skip
    return result
