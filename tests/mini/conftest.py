"""The miniature world's models (a trained ranker and a biased SFT captioner), built once per test run
and shared by the xdist workers: under pytest's cache, keyed by the world-building sources, under a lock.
Only world-building is cached; the method itself (caption, score, filter, pair, train) runs in the tests."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import pytest

# Small enough for CI (about 2-3 minutes on 2 cores, once), large enough that the method's effect is
# far outside chance (see test_mini_science.py).
N_RANKER, N_SFT, N_POOL, N_HELD_OUT = 1500, 2000, 120, 60
RANKER_STEPS, SFT_STEPS = 150, 300


@dataclass(frozen=True)
class MiniWorld:
    root: str
    ranker: str  # local-dir:... name for `clipdpo score --model`
    captioner: str  # LLaVA folder
    pool: str  # folder of pool images (+ scenes.jsonl)
    held_out: str  # AMBER-layout folder (+ scenes.jsonl)
    prompts: str  # caption prompts file


def _sources_key() -> str:
    import open_clip
    import transformers

    import clipdpo_mini as mini
    import clipdpo_mini.models as builders

    digest = hashlib.sha256(f"{transformers.__version__} {open_clip.__version__}".encode())
    digest.update(json.dumps([N_RANKER, N_SFT, N_POOL, N_HELD_OUT, RANKER_STEPS, SFT_STEPS]).encode())
    for folder in (os.path.dirname(mini.__file__), os.path.dirname(builders.__file__)):
        for name in sorted(os.listdir(folder)):
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as fh:
                    digest.update(name.encode() + fh.read())
    return digest.hexdigest()[:16]


def _build(out: str) -> None:
    from clipdpo_mini.captioner import train_captioner
    from clipdpo_mini.ranker import train_ranker
    from clipdpo_mini.world import write_amber_split, write_prompts, write_split

    ranker_scenes = write_split(os.path.join(out, "ranker-scenes"), N_RANKER, seed=0, start=0)
    sft_scenes = write_split(os.path.join(out, "sft-scenes"), N_SFT, seed=0, start=100_000)
    write_split(os.path.join(out, "pool"), N_POOL, seed=0, start=200_000)
    write_amber_split(os.path.join(out, "held-out"), N_HELD_OUT, seed=0, start=300_000)
    write_prompts(os.path.join(out, "prompts.txt"))
    ranker = train_ranker(ranker_scenes, os.path.join(out, "ranker"), steps=RANKER_STEPS, log_every=0)
    train_captioner(sft_scenes, ranker, os.path.join(out, "captioner"), seed=0, steps=SFT_STEPS, log_every=0)


@pytest.fixture(scope="session")
def mini_world(request: pytest.FixtureRequest) -> MiniWorld:
    from filelock import FileLock

    base = request.config.cache.mkdir("clipdpo-mini")
    out = base / _sources_key()
    with FileLock(str(base / f"{out.name}.lock")):
        if not (out / ".complete").exists():
            _build(str(out))
            (out / ".complete").write_text("ok")
    return MiniWorld(
        str(out), f"local-dir:{out / 'ranker'}", str(out / "captioner"), str(out / "pool"),
        str(out / "held-out"), str(out / "prompts.txt"),
    )  # fmt: skip
