"""Tiny random models for the tests, each built once per test run and shared by every xdist worker.

As tests/models/families/conftest.py does for the family checkpoints: the folders live in pytest's cache
under a key of the builders' sources (clipdpo_mini/models/*.py, tests/fixtures/tiny_hf_scorer.py), the
library versions and the build arguments, and are built under a file lock by whichever worker asks first
(into a temporary folder, renamed when complete, so an interrupted build is never used).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


def sources_key(**build_args: Any) -> str:
    """A digest of the testing builders' sources, torch/transformers/open_clip versions and `build_args`."""
    from importlib.metadata import PackageNotFoundError, version

    import clipdpo_mini.models as builders

    digest = hashlib.sha256(json.dumps(build_args, sort_keys=True, default=str).encode())
    for package in ("torch", "transformers", "open_clip_torch", "tokenizers"):
        try:
            digest.update(f"{package}={version(package)}".encode())
        except PackageNotFoundError:
            digest.update(f"{package}=none".encode())
    root = Path(builders.__file__).parent
    for path in [*sorted(root.glob("*.py")), Path(__file__).parent / "fixtures" / "tiny_hf_scorer.py"]:
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def cached_build(cache_root: Path, name: str, build: Callable[..., str], **build_args: Any) -> str:
    """`build(folder, **build_args)`'s result for a folder under `cache_root`, built once (locked).

    `build` returns how the model is named (the folder, or e.g. 'local-dir:FOLDER'); that name is kept
    beside the folder and returned to every later caller."""
    from filelock import FileLock

    base = cache_root / f"{name}-{sources_key(name=name, **build_args)}"
    cache_root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(base) + ".lock"):
        done = base / "NAME"
        if not done.exists():
            partial = Path(str(base) + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(base, ignore_errors=True)
            built = build(str(partial / "model"), **build_args)
            os.replace(partial, base)
            done.write_text(built.replace(str(partial), str(base)))
    return done.read_text()


def tiny_model_cache(config: Any) -> Path:
    """The folder of the cached tiny models in this checkout's pytest cache."""
    return Path(config.cache.mkdir("clipdpo-tiny-models"))
