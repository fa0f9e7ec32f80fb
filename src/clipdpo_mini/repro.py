"""`make repro-mini`: the CLIP-DPO method on the miniature world, through the real `clipdpo` commands.

Per SFT seed: train the biased captioner, then

    caption POOL | score (ranker) --categorize | filter | pair          -> pairs
    train (each arm) ; eval-amber --task generative on the held-out val and test splits   -> metrics

Arms: the candidate CLIP-DPO recipes (DPO + an SFT term on the chosen, and the paper's plain DPO, beta 0.1),
and controls trained with the recipe selected on the validation split (CONTROLS; docs/reproducing.md says why
each is fair): random images (the base's two samples of an image drawn from the pool, under a random prompt,
coin order), the DPO-only random-swap-dpo (swapped pairs, the plain-DPO candidate's recipe), self-preference
(the base model's greedy caption preferred to a coin-picked caption of the pair), a random-weights ranker (the
default four), random pairs (random images on the ranker's images), random preference (every pair in both
orders) and an older design kept for comparison. With `sources` (off by default), POVID's pair sources are
trained as arms with the selected recipe (SOURCES: injected hallucinations in the true captions, noised-image
captions, both, and both with the ranked pairs). With rounds >= 2, examples/iterate.sh continues from the
selected model (round 1) for further rounds, and from a control's model with `round_controls`. The table
reports the test split, with a paired-bootstrap interval of each CHAIR change. A rerun reuses finished steps
and sets aside (NAME.was-N) what other settings made. Layout of OUT (see docs/reproducing.md):

    world/{ranker,sft,pool}/   scenes (+ scenes.jsonl);  world/heldout/  AMBER folder: val ids, then test
    models/{ranker,ranker-random,sft-seedS}/
    seedS/captions.jsonl
    seedS/{ranker,ranker-random}/{scored,filtered,pairs}.jsonl (+ agreement.json)
    seedS/greedy.jsonl (the base's greedy captions of the pool, for self-preference)
    seedS/controls/ARM-pairs.jsonl  (each control's training pairs)
    seedS/noised-captions.jsonl, seedS/sources/ (trusted, perturbed, each source's pairs, agreement.json)
    seedS/ARM/{model/,train-summary.json,recipe.json}
    seedS/rounds/roundR/ (examples/iterate.sh, R >= 2; rounds/start.json) and seedS/roundR/ (its evaluation);
    seedS/CONTROL/rounds/roundR/ and seedS/CONTROL/roundR/ (round_controls)
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
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from clipdpo_mini.truth import chair_change_interval, mentions, pair_agreement, scene_counts


@dataclass(frozen=True)
class Recipe:
    name: str
    loss: str
    beta: float
    lr: float = 5e-5
    epochs: float = 2.0


# The candidate recipes, selected per seed on the validation split. The paper's plain DPO runs at 1e-5, the
# rate a sweep chose on the validation split (docs/reproducing.md "The paper's plain DPO"): at the DPO + SFT
# recipe's 5e-5 it lost a quarter of the coverage, at 5e-6 it moved little.
CANDIDATES = (
    Recipe("clip-dpo+sft", "dpo,sft", 0.1),
    Recipe("clip-dpo", "dpo", 0.1, lr=1e-5),
)


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
    candidates: tuple[Recipe, ...] = field(default_factory=lambda: CANDIDATES)
    controls: tuple[str, ...] = ("random-images", "random-swap-dpo", "self-preference", "random-ranker")
    rounds: int = 1  # >= 2: further rounds from the selected model, by examples/iterate.sh
    round_controls: tuple[str, ...] = ()  # controls also run for rounds 2..rounds (ROUND_CONTROLS)
    sources: tuple[str, ...] = ()  # POVID's pair sources trained as arms (SOURCES; off by default)
    image_noise: int = 500  # caption --image-noise steps of the `noised` source (POVID's 500)
    world_seed: int = 0
    jobs: int = 3  # seeds run side by side (each command single-threaded by OMP_NUM_THREADS=1)
    n_probe: int = 150  # Sec. 3.1's probe: true captions of the first n_probe validation scenes (0: none)
    ranker_options: str = ""  # comma-separated RANKER_OPTIONS names: their pairs' agreement, no training
    train_ranker_options: str = ""  # of those, the ones also trained (selected recipe) and evaluated


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
    from clipdpo_mini.world import read_manifest, write_amber_split, write_prompts, write_split

    w = os.path.join(s.out, "world")
    os.makedirs(w, exist_ok=True)
    paths = {k: os.path.join(w, k) for k in ("ranker", "sft", "pool", "heldout")}
    starts = {"ranker": 0, "sft": 100_000, "pool": 200_000, "heldout": 300_000}
    sizes = {"ranker": s.n_ranker, "sft": s.n_sft, "pool": s.n_pool}
    splits = {"val": s.n_val, "test": s.n_test}
    for key, path in paths.items():
        if key == "heldout" and _done(os.path.join(path, "scenes.jsonl")):
            have = {name: sum(r["split"] == name for r in read_manifest(path)) for name in splits}
            if have != splits:  # AMBER id k is the same scene at any size: evaluations resume on new ids
                set_aside(path, f"held-out splits {have}, settings ask {splits}")
        if _done(os.path.join(path, "scenes.jsonl")):
            continue
        if key == "heldout":
            write_amber_split(path, s.n_val + s.n_test, s.world_seed, starts[key], splits=splits)
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
    s: ReproSettings, captions: str, ranker: str, folder: str, scenes: dict, min_score: str,
    score_args: tuple[str, ...] = (), pair_args: tuple[str, ...] = (),
) -> str:  # fmt: skip
    """score | filter | pair with the real commands; also the agreement of the pairs with the truth.
    `score_args` / `pair_args` are extra options (a ranking option's; a later --min-margin wins)."""
    os.makedirs(folder, exist_ok=True)
    scored, kept, pairs = (os.path.join(folder, f) for f in ("scored.jsonl", "filtered.jsonl", "pairs.jsonl"))
    if not _done(scored):
        clipdpo("score", captions, "--model", ranker, "--categorize", "--workers", "0", *score_args, "-q",
                "-o", scored)  # fmt: skip
    if not _done(kept):
        # every image of this world is a plain drawing: categories carry no meaning, keep them all
        clipdpo("filter", scored, "--min-caption-score", min_score, "--text-keep", "1",
                "--rejects", os.path.join(folder, "rejects.jsonl"), "-o", kept)  # fmt: skip
    if not _done(pairs):
        clipdpo("pair", kept, "--per-image", str(s.per_image), "--min-margin", str(s.min_margin),
                "--max-length-diff", str(s.max_length_diff), *pair_args, "-o", pairs)  # fmt: skip
    _write_json(os.path.join(folder, "agreement.json"), pair_agreement(_read_jsonl(pairs), scenes))
    return pairs


@dataclass(frozen=True)
class RankerOption:
    """A way to rank the pool's captions (issue 31): extra `score` / `pair` options; `lvlm` scores the
    captions with the base captioner's own log-likelihood first (`score --scorer lvlm`, field lvlm_logp)."""

    name: str
    score_args: tuple[str, ...] = ()
    pair_args: tuple[str, ...] = ()
    lvlm: bool = False
    doc: str = ""
    min_score: str | None = None  # filter --min-caption-score ('none': keep all); None: the repro's


_FUSE = ("--fuse-field", "lvlm_logp", "--min-margin", "0")
RANKER_OPTIONS = {
    o.name: o
    for o in (
        RankerOption("clip", doc="the paper's raw CLIP score, margin > min_margin (repro's own pairs)"),
        RankerOption("clip-margin0", pair_args=("--min-margin", "0"),
                     doc="raw CLIP score, any margin (as many pairs as the rank-based options)"),
        RankerOption("fused", pair_args=(*_FUSE, "--fuse-alpha", "0.9"), lvlm=True,
                     doc="CSR: 0.9 rank(CLIP) + 0.1 rank(the captioner's log-likelihood), per image"),
        RankerOption("fused-0.5", pair_args=(*_FUSE, "--fuse-alpha", "0.5"), lvlm=True,
                     doc="the same, half and half"),
        RankerOption("lvlm", pair_args=(*_FUSE, "--fuse-alpha", "0"), lvlm=True,
                     doc="the captioner's own log-likelihood alone (self-rewarding without CLIP)"),
        RankerOption("sentence-mean", score_args=("--per-sentence", "mean"), doc="mean CLIP over sentences"),
        RankerOption("sentence-min", score_args=("--per-sentence", "min"), doc="min CLIP over sentences"),
        RankerOption("clause-mean", score_args=("--per-sentence", "mean", "--parts", "clause"),
                     doc="mean CLIP over clauses (here: one per object)"),
        RankerOption("clause-min", score_args=("--per-sentence", "min", "--parts", "clause"),
                     doc="min CLIP over clauses (here: the worst object)"),
        # the filter's threshold is on the whole-caption scale: these keep every caption instead
        RankerOption("clip-unfiltered", min_score="none", doc="raw CLIP score, no score filter"),
        RankerOption("clause-mean-unfiltered", score_args=("--per-sentence", "mean", "--parts", "clause"),
                     min_score="none", doc="mean CLIP over clauses, no score filter"),
        RankerOption("clause-min-unfiltered", score_args=("--per-sentence", "min", "--parts", "clause"),
                     min_score="none", doc="min CLIP over clauses, no score filter"),
    )
}  # fmt: skip


def option_names(value: str) -> tuple[str, ...]:
    """Comma-separated RANKER_OPTIONS names (ValueError for an unknown one)."""
    names = tuple(n for n in value.split(",") if n)
    unknown = [n for n in names if n not in RANKER_OPTIONS]
    if unknown:
        raise ValueError(f"unknown ranker option {', '.join(unknown)} (known: {', '.join(RANKER_OPTIONS)})")
    return names


def ranker_option_pairs(
    s: ReproSettings, name: str, captions: str, base: str, ranker: str, sd: str, scenes: dict
) -> str:
    """The pairs of one ranking option on the seed's caption pool (seedS/rankers/NAME/), with the same
    filter and pair rules as the ranker's own; its agreement with the truth in agreement.json."""
    option = RANKER_OPTIONS[name]
    if name == "clip":
        return os.path.join(sd, "ranker", "pairs.jsonl")
    source = captions
    if option.lvlm:
        source = os.path.join(sd, "rankers", "lvlm.jsonl")
        if not _done(source):
            os.makedirs(os.path.dirname(source), exist_ok=True)
            # an empty sample is a bad record for the likelihood: skipped (pair drops it anyway)
            clipdpo("score", captions, "--scorer", "lvlm", "--model", base, "--scorer-field", "lvlm_scorer",
                    "--batch-size", "50", "--workers", "0", "--on-error", "skip", "-q",
                    "-o", source)  # fmt: skip
    min_score = option.min_score or str(s.min_caption_score)
    return make_pairs(s, source, ranker, os.path.join(sd, "rankers", name), scenes, min_score,
                      option.score_args, option.pair_args)  # fmt: skip


def world_variants(rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Hallucinated variants in the world's own phrasing (`perturb`'s rules write "..., and a kite." and
    colours the world never shows), as probe records: `world-existence` (an absent kind, in a colour of
    the world, added as the last item), `world-attribute` (one object's colour changed to another of the
    world's) and `planted-box` (a scene with a ball and no box: the box the SFT captions plant, the
    captioner's learnt prior)."""
    import random

    from clipdpo_mini.world import (
        COLOURS,
        DESCRIBE,
        KINDS,
        PLANTED,
        MiniScene,
        caption_of,
        hallucinated_caption,
    )

    out = []
    for row in rows:
        scene = MiniScene.from_json(row["scene"])
        rng = random.Random(f"mini-probe:{seed}:{scene.index}")
        items = [(i.colour, i.kind) for i in scene.items]
        absent = [k for k in KINDS if k not in scene.kinds and k != PLANTED]
        k = rng.randrange(len(items))
        recoloured = [(rng.choice([c for c in sorted(COLOURS) if c != items[k][0]]), items[k][1])]
        texts = {
            "world-existence": caption_of([*items, (rng.choice(sorted(COLOURS)), rng.choice(absent))]),
            "world-attribute": caption_of(items[:k] + recoloured + items[k + 1 :]),
        }
        if scene.triggers_bias:
            texts["planted-box"] = hallucinated_caption(scene, rng)
        original = f"probe-{row['id']}"
        out += [{"id": f"{original}-{kind}", "image": row["image"], "text": text, "prompt": DESCRIBE,
                 "original": row["caption"], "hallucination": kind, "from": original}
                for kind, text in texts.items()]  # fmt: skip
    return out


def probe_variants(s: ReproSettings, world: dict[str, str], rankers: dict[str, str]) -> str | None:
    """Sec. 3.1's probe input (world/probe/): the true captions of the first n_probe validation scenes,
    their hallucinated variants by `perturb --method rules` (existence: an absent kind of the world added;
    attribute: a colour changed) and in the world's own phrasing (world_variants), scored by the ranker
    (field `ranker`) and the random ranker (`random_ranker`). Each seed's captioner adds its likelihood in
    run_probe."""
    from clipdpo_mini.world import DESCRIBE, KINDS, read_manifest

    if s.n_probe <= 0:
        return None
    folder = os.path.join(s.out, "world", "probe")
    os.makedirs(folder, exist_ok=True)
    captions, objects = os.path.join(folder, "captions.jsonl"), os.path.join(folder, "objects.txt")
    perturbed, scored = os.path.join(folder, "perturbed.jsonl"), os.path.join(folder, "scored.jsonl")
    if _done(scored):
        return scored
    rows = [r for r in read_manifest(world["heldout"]) if r["split"] == "val"][: s.n_probe]
    with open(captions, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"id": f"probe-{r['id']}", "image": r["image"], "text": r["caption"],
                                  "prompt": DESCRIBE}) + "\n" for r in rows)  # fmt: skip
    with open(objects, "w", encoding="utf-8") as fh:
        fh.write("# the miniature world's object kinds\n" + "\n".join(KINDS) + "\n")
    clipdpo("perturb", captions, "--types", "existence,attribute", "--objects", objects, "--seed",
            str(s.world_seed), "-q", "-o", perturbed)  # fmt: skip
    with open(perturbed, "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(v) + "\n" for v in world_variants(rows, s.world_seed))
    ranked = os.path.join(folder, "ranked.jsonl")
    clipdpo("score", perturbed, "--model", rankers["ranker"], "--score-field", "ranker", "--scorer-field",
            "ranker_scorer", "--workers", "0", "-q", "-o", ranked)  # fmt: skip
    clipdpo("score", ranked, "--model", rankers["ranker-random"], "--score-field", "random_ranker",
            "--scorer-field", "random_ranker_scorer", "--workers", "0", "-q",
            "-o", scored + ".part")  # fmt: skip
    os.replace(scored + ".part", scored)
    return scored


def run_probe(s: ReproSettings, scored: str, base: str, sd: str) -> dict[str, Any]:
    """`score --scorer lvlm` (the seed's SFT captioner) on the probe's captions, then `probe`: per type,
    how many variants the captioner finds more likely than their original, and how many of those each
    ranker ranks below it (the paper's Fig. 2)."""
    folder = os.path.join(sd, "probe")
    os.makedirs(folder, exist_ok=True)
    lvlm, fig2 = os.path.join(folder, "lvlm.jsonl"), os.path.join(folder, "fig2.json")
    if not _done(lvlm):
        clipdpo("score", scored, "--scorer", "lvlm", "--model", base, "--scorer-field", "lvlm_scorer",
                "--batch-size", "50", "--workers", "0", "-q", "-o", lvlm)  # fmt: skip
    if not _done(fig2):
        clipdpo("probe", lvlm, "--scorer-field", "ranker", "--scorer-field", "random_ranker", "-q",
                "-o", fig2)  # fmt: skip
    return _read_json(fig2)


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
    pairs: list[dict[str, Any]], captions: list[dict[str, Any]], seed: int, any_image: bool = False
) -> list[dict[str, Any]]:
    """The random-pairs control: per pair of the ranker's, two of the captions the base model sampled for
    that image under one prompt drawn at random (not the pair's prompt: with two samples per prompt, the
    pair's prompt would bring back its chosen caption half the time), in an order a coin picks. No ranker
    chooses the captions or their order, so the SFT term fits the model's own unselected samples (whose
    expected log-likelihood gradient is zero) and the DPO term a coin. `any_image` (the random-images
    control): the image too is drawn, uniformly from the pool, instead of the ranker's pair's image (the
    ranker pairs the images whose samples differ most, i.e. where the model hallucinates)."""
    import random

    rng = random.Random(f"mini-random-pairs:{seed}" + (":any-image" if any_image else ""))
    by_image: dict[str, dict[str, list[str]]] = {}
    for record in captions:
        if not record["text"].strip():  # nothing to train on (pair drops empty captions too)
            continue
        by_image.setdefault(record["image"], {}).setdefault(record["prompt"], []).append(record["text"])
    # images with two captions to pair (under one prompt, or under two)
    pool = sorted(i for i, p in by_image.items() if len(p) >= 2 or any(len(t) >= 2 for t in p.values()))
    out = []
    for pair in pairs:
        image = rng.choice(pool) if any_image else pair["image"]
        prompts = by_image[image]
        usable = sorted(p for p, texts in prompts.items() if len(texts) >= 2)
        if usable:
            prompt = rng.choice(usable)
            first, second = rng.sample(prompts[prompt], 2)
        else:  # one sample per prompt: two of the image's captions, each with its own prompt
            prompt, other = rng.sample(sorted(prompts), 2)
            first, second = prompts[prompt][0], prompts[other][0]
        out.append({"id": pair["id"], "image": image, "kind": pair.get("kind", "caption"),
                    "prompt": prompt, "chosen": first, "rejected": second})  # fmt: skip
    return out


@dataclass(frozen=True)
class Control:
    """A control arm: its pairs (by `pairs`, from the ranker's pairs) and how it changes the recipe."""

    name: str
    pairs: str  # both-orders | random-pairs | random-images | self-preference | swapped | random-ranker
    recipe: str | None = None  # the CANDIDATES recipe it trains with; None: the seed's selected one
    epochs_factor: float = 1.0
    doc: str = ""

    def recipe_for(self, selected: Recipe) -> Recipe:
        """The recipe this control trains with, named after the control."""
        base = next(r for r in CANDIDATES if r.name == self.recipe) if self.recipe else selected
        return replace(base, name=self.name, epochs=base.epochs * self.epochs_factor)


CONTROLS = {
    c.name: c
    for c in (
        Control("random-preference", "both-orders", epochs_factor=0.5,
                doc="every pair in both orders, half the epochs"),
        Control("random-pairs", "random-pairs", doc="two base samples, random prompt, coin order"),
        Control("random-images", "random-images", doc="random pairs on images drawn from the whole pool"),
        Control("self-preference", "self-preference", doc="base greedy caption > a coin-picked caption"),
        Control("random-ranker", "random-ranker", doc="pairs by an untrained ranker"),
        Control("random-swap", "swapped", doc="(earlier design) each pair swapped with probability 1/2"),
        Control("random-swap-dpo", "swapped", recipe="clip-dpo",
                doc="(DPO only) swapped pairs, the paper's plain-DPO candidate (no SFT term)"),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Source:
    """A pair-source arm (POVID's dispreferred answers): the pair files it trains on, concatenated."""

    name: str
    parts: tuple[str, ...]  # of "ranked", "injected", "noised"
    doc: str = ""


SOURCES = {
    a.name: a
    for a in (
        Source("injected", ("injected",), doc="true caption > its perturb variant (POVID stage 1)"),
        Source("noised", ("noised",), doc="clean-image caption > noised-image caption (POVID stage 2)"),
        Source("povid", ("injected", "noised"), doc="both POVID sources"),
        Source("ranked+povid", ("ranked", "injected", "noised"), doc="CLIP-ranked and both POVID sources"),
    )
}  # fmt: skip


def trusted_captions(world: dict[str, str], path: str) -> str:
    """POVID's trusted answers in this world: each pool image's true caption, under one of the world's
    prompts in turn (the ranked pairs' prompts come from the same five)."""
    from clipdpo_cli.io.records import make_id
    from clipdpo_mini.world import PROMPTS, read_manifest

    rows = read_manifest(world["pool"])
    with open(path + ".part", "w", encoding="utf-8") as fh:
        for i, row in enumerate(rows):
            record = {"id": make_id("trusted", row["image"]), "image": row["image"],
                      "prompt": PROMPTS[i % len(PROMPTS)], "text": row["caption"]}  # fmt: skip
            fh.write(json.dumps(record) + "\n")
    os.replace(path + ".part", path)
    return path


def source_parts(
    s: ReproSettings, sd: str, ranked: str, base: str, world: dict[str, str], seed: int
) -> dict[str, str]:
    """The pair file of each source, with the real commands: `ranked` (the ranker's pairs), `injected`
    (perturb --types existence,attribute of the true captions, the world's coloured objects as the
    existence vocabulary | pair --source injected; the captions have no relation words) and `noised`
    (caption --image-noise with the base's caption settings, then pair --source noised against the
    clean captions: same prompt and sample, --per-image and --max-length-diff as for the ranked pairs)."""
    from clipdpo_mini.world import COLOURS, KINDS

    folder = os.path.join(sd, "sources")
    os.makedirs(folder, exist_ok=True)
    out = {"ranked": ranked}
    injected = os.path.join(folder, "injected-pairs.jsonl")
    if not _done(injected):
        trusted = trusted_captions(world, os.path.join(folder, "trusted.jsonl"))
        objects = os.path.join(folder, "objects.txt")
        with open(objects, "w", encoding="utf-8") as fh:
            fh.writelines(f"{colour} {kind}\n" for colour in COLOURS for kind in KINDS)
        perturbed = os.path.join(folder, "perturbed.jsonl")
        clipdpo("perturb", trusted, "--types", "existence,attribute", "--objects", objects,
                "--seed", str(seed), "-q", "-o", perturbed)  # fmt: skip
        clipdpo("pair", perturbed, "--source", "injected", "-q", "-o", injected + ".part")
        os.replace(injected + ".part", injected)
    out["injected"] = injected
    noised = os.path.join(folder, "noised-pairs.jsonl")
    if not _done(noised):
        captions = os.path.join(sd, "noised-captions.jsonl")
        if not _done(captions):
            clipdpo("caption", world["pool"], "--model", base, "--prompts", world["prompts"],
                    "--samples-per-prompt", str(s.samples_per_prompt), "--temperature", "1", "--top-p", "1",
                    "--max-new-tokens", str(s.max_new_tokens), "--seed", str(seed), "--batch-size", "80",
                    "--image-noise", str(s.image_noise), "--workers", "0", "-q",
                    "-o", captions + ".part")  # fmt: skip
            os.replace(captions + ".part", captions)
        both = os.path.join(folder, "clean+noised-captions.jsonl")
        _concat([os.path.join(sd, "captions.jsonl"), captions], both)
        clipdpo("pair", both, "--source", "noised", "--per-image", str(s.per_image), "--max-length-diff",
                str(s.max_length_diff), "--input-order", "any", "--rejects",
                os.path.join(folder, "noised-rejects.jsonl"), "-q", "-o", noised + ".part")  # fmt: skip
        os.replace(noised + ".part", noised)
        os.remove(both)
    out["noised"] = noised
    return out


def _concat(paths: list[str], out: str) -> str:
    with open(out, "wb") as fh:
        for path in paths:
            with open(path, "rb") as src:
                fh.write(src.read())
    return out


def source_pairs(source: Source, parts: dict[str, str], sd: str) -> str:
    """The training pairs of a source arm: its parts' pair files concatenated (their ids never collide)."""
    if len(source.parts) == 1:
        return parts[source.parts[0]]
    path = os.path.join(sd, "sources", f"{source.name}-pairs.jsonl")
    if not _done(path):
        _concat([parts[p] for p in source.parts], path + ".part")
        os.replace(path + ".part", path)
    return path


def source_agreement(parts: dict[str, str], scenes: dict) -> dict[str, Any]:
    """Pair agreement with the world's truth of each source and of every source arm (no training)."""
    pairs = {name: _read_jsonl(path) for name, path in parts.items()}
    out: dict[str, Any] = {name: pair_agreement(rows, scenes) for name, rows in pairs.items()}
    for kind in ("existence", "attribute"):
        typed = [p for p in pairs["injected"] if p.get("hallucination") == kind]
        out[f"injected:{kind}"] = pair_agreement(typed, scenes)
    for source in SOURCES.values():
        if len(source.parts) > 1:
            out[source.name] = pair_agreement([p for part in source.parts for p in pairs[part]], scenes)
    return out


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
    elif control.pairs in ("random-pairs", "random-images"):
        rows = random_pairs(ranked, _read_jsonl(os.path.join(sd, "captions.jsonl")), seed,
                            any_image=control.pairs == "random-images")  # fmt: skip
    else:
        greedy = {(r["image"], r["prompt"]): r["text"]
                  for r in _read_jsonl(greedy_captions(s, base, world, sd, seed))}  # fmt: skip
        rows = self_preference(ranked, greedy, seed)
    with open(path + ".part", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(p) + "\n" for p in rows)
    os.replace(path + ".part", path)
    return path


def set_aside(folder: str, why: str) -> None:
    """Rename a folder this driver wrote and no longer matches the settings to FOLDER.was-N (kept, not
    deleted), so the step that made it runs again."""
    n = 1
    while os.path.exists(f"{folder}.was-{n}"):
        n += 1
    os.replace(folder, f"{folder}.was-{n}")
    _log(f"{folder}: {why}; set aside as {folder}.was-{n}, made again")


def _trained_with(folder: str) -> dict[str, Any] | None:
    """What an arm folder was trained with: its recipe.json, else (older runs) the learning rate its
    train-summary.json records; None when it holds no finished training."""
    if _done(os.path.join(folder, "recipe.json")):
        return _read_json(os.path.join(folder, "recipe.json"))
    summary = os.path.join(folder, "model", "train_summary.json")
    return {"lr": _read_json(summary)["learning_rate"]} if _done(summary) else None


def train_arm(s: ReproSettings, recipe: Recipe, pairs: str, base: str, folder: str, seed: int) -> str:
    """`clipdpo train` of one arm into FOLDER/model, once: a rerun reuses it while it was trained with the
    same recipe, pairs and start model (FOLDER/recipe.json), and sets it aside (with its evaluation) when
    a setting changed, e.g. a candidate's learning rate."""
    model = os.path.join(folder, "model")
    wanted = {"loss": recipe.loss, "beta": recipe.beta, "lr": recipe.lr, "epochs": recipe.epochs,
              "pairs": os.path.abspath(pairs), "model": os.path.abspath(base), "seed": seed}  # fmt: skip
    had = _trained_with(folder) if os.path.isdir(folder) else None
    changed = [f"{k} {had[k]} -> {wanted[k]}" for k in (had or {}) if k in wanted and had[k] != wanted[k]]
    if changed:
        set_aside(folder, f"trained with other settings ({', '.join(changed)})")
    os.makedirs(folder, exist_ok=True)
    if not _done(os.path.join(model, "config.json")):
        clipdpo("train", pairs, "--model", base, "--output-dir", model, "--loss", recipe.loss,
                "--beta", str(recipe.beta), "--learning-rate", str(recipe.lr), "--epochs", str(recipe.epochs),
                "--batch-size", str(s.batch_size), "--per-device-batch-size", str(s.batch_size),
                "--warmup-ratio", "0.05", "--no-gradient-checkpointing", "--save-steps", "100000",
                "--logging-steps", "50", "--seed", str(seed),
                stdout=os.path.join(folder, "train-summary.json"))  # fmt: skip
    if not _done(os.path.join(folder, "recipe.json")):
        _write_json(os.path.join(folder, "recipe.json"), wanted)
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
    from clipdpo_mini.world import MiniScene, read_manifest

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
        scenes = [MiniScene.from_json(r["scene"]) for r in rows if r["split"] == split]
        out[split] = {
            "CHAIR": gen["CHAIR"], "Cover": gen["Cover"], "Hal": gen["Hal"], "Cog": gen.get("Cog"),
            "length": round(statistics.fmean(len(t.split()) for t in texts), 3),
            "mentions": round(statistics.fmean(len(mentions(t)) for t in texts), 3),
            "counts": scene_counts(scenes, texts),  # per scene, for summarise's bootstrap interval
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


def prepare_seed(
    s: ReproSettings, seed: int, world: dict[str, str], rankers: dict[str, str], probe: str | None = None
) -> dict[str, Any]:
    """A seed's steps before training: the SFT captioner, its caption pool, the rankers' pairs, the probe
    and the ranking options' pairs, with their agreement with the truth."""
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
    fig2 = run_probe(s, probe, base, sd) if probe else None
    trained_options = option_names(s.train_ranker_options)
    option_pairs = {
        name: ranker_option_pairs(s, name, captions, base, rankers["ranker"], sd, scenes)
        for name in dict.fromkeys((*option_names(s.ranker_options), *trained_options))
    }
    option_agreement = {"clip": agreement["ranker"]}
    option_agreement.update({n: pair_agreement(_read_jsonl(p), scenes) for n, p in option_pairs.items()})
    return {"sd": sd, "base": base, "captions": captions, "scenes": scenes, "pairs": pairs,
            "agreement": agreement, "probe": fig2, "trained_options": trained_options,
            "option_pairs": option_pairs, "rankers": option_agreement}  # fmt: skip


def run_seed(
    s: ReproSettings, seed: int, world: dict[str, str], rankers: dict[str, str], probe: str | None = None
) -> dict[str, Any]:
    ready = prepare_seed(s, seed, world, rankers, probe)
    sd, base, scenes, pairs, agreement = (ready[k] for k in ("sd", "base", "scenes", "pairs", "agreement"))
    trained_options, option_pairs = ready["trained_options"], ready["option_pairs"]
    option_agreement = ready["rankers"]
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
        model = train_arm(s, control.recipe_for(recipe), arm_pairs, base, os.path.join(sd, name), seed)
        metrics[name] = evaluate(s, model, world, os.path.join(sd, name, "eval"))
        pair_counts[name] = pair_agreement(_read_jsonl(arm_pairs), scenes)
    for name in trained_options:  # a ranking option's pairs, trained with the selected recipe
        arm = f"ranker-{name}"
        model = train_arm(s, replace(recipe, name=arm), option_pairs[name], base, os.path.join(sd, arm), seed)
        metrics[arm] = evaluate(s, model, world, os.path.join(sd, arm, "eval"))
        pair_counts[arm] = option_agreement[name]
    if s.sources:
        parts = source_parts(s, sd, pairs["ranker"], base, world, seed)
        _write_json(os.path.join(sd, "sources", "agreement.json"), source_agreement(parts, scenes))
        for name in s.sources:
            arm_pairs = source_pairs(SOURCES[name], parts, sd)
            model = train_arm(s, Recipe(name, recipe.loss, recipe.beta, recipe.lr, recipe.epochs), arm_pairs,
                              base, os.path.join(sd, name), seed)  # fmt: skip
            metrics[name] = evaluate(s, model, world, os.path.join(sd, name, "eval"))
            pair_counts[name] = pair_agreement(_read_jsonl(arm_pairs), scenes)
    rounds = [("", recipe, os.path.join(sd, chosen, "model"), "ranker", str(s.min_caption_score), sd)]
    for name in s.round_controls:  # the control's own rounds, from its round-1 model, with its ranker
        ranker_key, min_score = ROUND_CONTROLS[name]
        rounds.append((f"{name}-", CONTROLS[name].recipe_for(recipe), os.path.join(sd, name, "model"),
                       ranker_key, min_score, os.path.join(sd, name)))  # fmt: skip
    for prefix, arm_recipe, start, ranker_key, min_score, folder in rounds:
        for r, rnd in run_rounds(s, seed, arm_recipe, start, world, rankers[ranker_key], min_score, folder):
            metrics[f"{prefix}round{r}"] = evaluate(
                s, os.path.join(rnd, "model"), world, os.path.join(folder, f"round{r}")
            )
            pair_counts[f"{prefix}round{r}"] = pair_agreement(_read_jsonl(os.path.join(rnd, "pairs.jsonl")),
                                                              scenes)  # fmt: skip
    return {"seed": seed, "selected": chosen, "metrics": metrics, "pairs": pair_counts,
            "rankers": option_agreement, "probe": ready["probe"]}  # fmt: skip


# controls whose rounds examples/iterate.sh can run: the ranker (repro's key) and filter threshold they use
ROUND_CONTROLS = {"random-ranker": ("ranker-random", "none")}


def run_rounds(
    s: ReproSettings,
    seed: int,
    recipe: Recipe,
    round1: str,
    world: dict[str, str],
    ranker: str,
    min_score: str,
    folder: str,
) -> list[tuple[int, str]]:
    """Rounds 2..s.rounds by examples/iterate.sh into FOLDER/rounds/ (the model `round1` is round 1): each
    round captions with the previous round's model, scores with `ranker`, and trains from that model with
    it as the reference, with the world's settings."""
    if s.rounds < 2:
        return []
    out = os.path.join(folder, "rounds")
    # the rounds continue one model, trained once: a different start (another selected recipe, a retrained
    # arm) sets the rounds and their evaluations aside
    recipe_file = os.path.join(os.path.dirname(round1), "recipe.json")  # train_arm's, beside the model
    trained = _read_json(recipe_file) if _done(recipe_file) else None
    start = {"model": os.path.abspath(round1), "trained": trained}
    start_file = os.path.join(out, "start.json")
    if _done(start_file) and _read_json(start_file) != start:
        set_aside(out, "started from another model")
        for r in range(2, s.rounds + 1):
            if os.path.isdir(os.path.join(folder, f"round{r}")):
                set_aside(os.path.join(folder, f"round{r}"), "evaluation of a set-aside round")
    os.makedirs(out, exist_ok=True)
    if not _done(start_file):
        _write_json(start_file, start)
    script = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "iterate.sh")
    if not os.path.isfile(script):  # an installed package: the script of the source tree it runs from
        script = os.path.join(os.getcwd(), "examples", "iterate.sh")
    env = {
        **os.environ, "MODEL": round1, "IMAGES": world["pool"], "OUT": out, "FIRST_ROUND": "2",
        "ROUNDS": str(s.rounds), "RANKER": ranker, "SEED": str(seed), "PYTHON": sys.executable,
        "CAPTION_ARGS": f"--prompts {world['prompts']} --samples-per-prompt {s.samples_per_prompt} "
                        f"--temperature 1 --top-p 1 --max-new-tokens {s.max_new_tokens} --batch-size 80 "
                        "--workers 0",
        "SCORE_ARGS": "--categorize --workers 0",
        "FILTER_ARGS": f"--min-caption-score {min_score} --text-keep 1",
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
    rounds = tuple(f"{prefix}round{r}" for prefix in ("", *(f"{c}-" for c in s.round_controls))
                   for r in range(2, s.rounds + 1))  # fmt: skip
    options = tuple(f"ranker-{name}" for name in option_names(s.train_ranker_options))
    return ("base", *(c.name for c in s.candidates), "selected", *s.controls, *options, *s.sources, *rounds)


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
            ci = None if arm == "base" else chair_change_interval(b.get("counts"), m.get("counts"))
            rows.append({**{k: m[k] for k in COLUMNS}, **rel, "agreement": agree, "pairs": n_pairs,
                         "CHAIR_rel_ci95": ci, "seed": r["seed"]})  # fmt: skip
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
        # the paired bootstrap interval of each seed's change contains 0: no movement this evaluation resolves
        "controls_each_seed_interval_contains_0": {
            name: all(ci is not None and ci[0] <= 0 <= ci[1]
                      for ci in (r["CHAIR_rel_ci95"] for r in table[name]["per_seed"]))
            for name in controls
            if name in table
        },  # fmt: skip
        "controls_each_seed_within_20pct": {
            name: all(abs(v) <= 0.2 for v in table[name]["stats"]["CHAIR_rel"]["values"])
            for name in controls
            if name in table
        },
    }
    previous = sel["CHAIR"]["mean"]
    for r in range(2, 1 + max((int(k[5:]) for k in table if k.startswith("round")), default=1)):
        out[f"round{r}_chair_below_round{r - 1}"] = table[f"round{r}"]["stats"]["CHAIR"]["mean"] < previous
        previous = table[f"round{r}"]["stats"]["CHAIR"]["mean"]
    return out


def summarise_rankers(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per ranking option over seeds: the pairs' agreement with the truth and their counts."""
    out: dict[str, Any] = {}
    names = dict.fromkeys(n for r in seeds for n in (r.get("rankers") or {}))
    for name in names:
        rows = [(r.get("rankers") or {}).get(name) for r in seeds]
        rows = [x for x in rows if x is not None]
        if not rows:
            continue
        stats = {}
        for key in ("agreement", "pairs", "chosen_fewer", "chosen_more", "same"):
            vals = [x[key] for x in rows if x[key] is not None]
            if vals:
                stats[key] = {"mean": round(statistics.fmean(vals), 4),
                              "sd": round(statistics.stdev(vals), 4) if len(vals) > 1 else 0.0,
                              "values": vals}  # fmt: skip
        out[name] = {"doc": RANKER_OPTIONS[name].doc, "stats": stats}
    return out


def format_rankers(rankers: dict[str, Any]) -> str:
    head = f"{'ranking option':<15} {'agree':>13} {'pairs':>6} {'fewer':>6} {'more':>6} {'same':>6}"
    lines = ["pair agreement with the truth (no training; mean ± sd over seeds)", head, "-" * len(head)]
    for name, row in rankers.items():
        st = row["stats"]

        def mean(key: str, st: dict[str, Any] = st) -> str:
            return f"{st[key]['mean']:.0f}" if key in st else "-"

        agree = f"{st['agreement']['mean']:.3f} ±{st['agreement']['sd']:.3f}" if "agreement" in st else "-"
        lines.append(f"{name:<15} {agree:>13} {mean('pairs'):>6} {mean('chosen_fewer'):>6} "
                     f"{mean('chosen_more'):>6} {mean('same'):>6}")  # fmt: skip
    return "\n".join(lines)


PROBE_TYPES = ("existence", "attribute", "world-existence", "world-attribute", "planted-box", "all")
PROBE_SCORERS = ("ranker", "random_ranker")


def summarise_probe(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """The probe (Fig. 2) per type over seeds: variants, how many the captioner prefers to the original,
    and per ranker the share of those it corrects and the share of all variants it ranks below."""
    found = [r["probe"] for r in seeds if r.get("probe")]
    if not found:
        return {}
    out: dict[str, Any] = {}
    kinds = dict.fromkeys([*(k for k in PROBE_TYPES if k != "all"), *(k for f in found for k in f["types"])])
    for kind in (*kinds, "all"):
        rows = [f["all"] if kind == "all" else f["types"][kind] for f in found
                if kind == "all" or kind in f["types"]]  # fmt: skip
        if not rows:
            continue
        entry: dict[str, Any] = {"variants": [x["variants"] for x in rows],
                                 "lvlm_prefers": [x["lvlm_prefers"] for x in rows]}  # fmt: skip
        for name in PROBE_SCORERS:
            per = [x["scorers"][name] for x in rows]
            entry[name] = {
                "corrects_lvlm_pct": [p["corrects_lvlm_pct"] for p in per],
                "original_higher_pct": [round(100 * p["ranks_original_higher"] / x["variants"], 2)
                                        for p, x in zip(per, rows, strict=True)],  # fmt: skip
            }
        entry["lvlm_original_higher_pct"] = [
            round(100 * x["lvlm"]["ranks_original_higher"] / x["variants"], 2) for x in rows
        ]
        out[kind] = entry
    return out


def format_probe(probe: dict[str, Any]) -> str:
    def vals(values: list[Any]) -> str:
        return ", ".join("-" if v is None else f"{v:.0f}" for v in values)

    head = (f"{'type':<15} {'n':>11} {'LVLM prefers':>14} {'ranker % corr.':>16} {'random % corr.':>16} "
            f"{'% orig. higher: LVLM / ranker / random':>40}")  # fmt: skip
    lines = ["probe (Sec. 3.1, Fig. 2): the seeds' captioners against the rankers, per seed", head,
             "-" * len(head)]  # fmt: skip
    for kind, e in probe.items():
        higher = f"{vals(e['lvlm_original_higher_pct'])} / {vals(e['ranker']['original_higher_pct'])} / " \
                 f"{vals(e['random_ranker']['original_higher_pct'])}"  # fmt: skip
        lines.append(f"{kind:<15} {vals(e['variants']):>11} {vals(e['lvlm_prefers']):>14} "
                     f"{vals(e['ranker']['corrects_lvlm_pct']):>16} "
                     f"{vals(e['random_ranker']['corrects_lvlm_pct']):>16} {higher:>40}")  # fmt: skip
    return "\n".join(lines)


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


def format_intervals(table: dict[str, Any]) -> str:
    """Per arm and seed: the test CHAIR change and its paired-bootstrap 95% interval over the scenes."""
    lines = ["CHAIR change per seed [95% interval, paired bootstrap over the test scenes]"]
    for arm, row in table.items():
        cells = [
            f"{100 * x['CHAIR_rel']:+.0f}% [{100 * lo:+.0f}, {100 * hi:+.0f}]"
            for x in row["per_seed"]
            if x.get("CHAIR_rel_ci95") and x.get("CHAIR_rel") is not None
            for lo, hi in [x["CHAIR_rel_ci95"]]
        ]  # fmt: skip
        if cells:
            lines.append(f"{arm:<24} " + "   ".join(cells))
    return "\n".join(lines) if len(lines) > 1 else ""


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


def prepare_shared(s: ReproSettings) -> tuple[dict[str, str], dict[str, str], str | None]:
    """What every seed shares, built once (offline): the world, the rankers and the probe's variants."""
    os.makedirs(s.out, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    world = build_world(s)
    rankers = build_rankers(s, world)
    return world, rankers, probe_variants(s, world, rankers)


def measure_rankers(s: ReproSettings) -> dict[str, Any]:
    """`python -m clipdpo_mini rankers OUT`: every step before training (world, models, caption pools,
    pairs), the probe and the ranking options' pair agreement, per seed, in OUT/rankers.json and printed.
    It shares OUT's files with `repro` (a later `repro` in OUT reuses them)."""
    started = time.time()
    world, rankers, probe = prepare_shared(s)
    from concurrent.futures import ThreadPoolExecutor

    def one(seed: int) -> dict[str, Any]:
        ready = prepare_seed(s, seed, world, rankers, probe)
        return {"seed": seed, "rankers": ready["rankers"], "probe": ready["probe"]}

    with ThreadPoolExecutor(max_workers=max(1, s.jobs)) as pool:
        seeds = list(pool.map(one, s.seeds))
    result = {"settings": {**asdict(s), "candidates": [asdict(r) for r in s.candidates]},
              "rankers": summarise_rankers(seeds), "probe": summarise_probe(seeds), "per_seed": seeds,
              "seconds": round(time.time() - started, 1)}  # fmt: skip
    _write_json(os.path.join(s.out, "rankers.json"), result)
    text = format_rankers(result["rankers"])
    if result["probe"]:
        text += "\n\n" + format_probe(result["probe"])
    print(text)
    return result


def run(s: ReproSettings) -> dict[str, Any]:
    started = time.time()
    world, rankers, probe = prepare_shared(s)
    import threading
    from concurrent.futures import ThreadPoolExecutor

    failed = threading.Event()  # a failed seed stops the others from starting (rerun to resume)

    def one(seed: int) -> dict[str, Any] | None:
        if failed.is_set():
            return None
        try:
            result = run_seed(s, seed, world, rankers, probe)
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
        "rankers": summarise_rankers(seeds), "probe": summarise_probe(seeds),
    }  # fmt: skip
    _write_json(os.path.join(s.out, "table.json"), result)
    text = format_table(table)
    if intervals := format_intervals(table):
        text += "\n\n" + intervals
    if result["rankers"] and len(result["rankers"]) > 1:
        text += "\n\n" + format_rankers(result["rankers"])
    if result["probe"]:
        text += "\n\n" + format_probe(result["probe"])
    with open(os.path.join(s.out, "table.txt"), "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    plot(table, os.path.join(s.out, "table.png"))
    print(text)
    print(json.dumps({"targets": result["targets"], "selected": result["selected"],
                      "seconds": result["seconds"]}))  # fmt: skip
    return result
