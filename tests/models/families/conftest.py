"""Shrunken real-family checkpoints, each built once per test run and shared by the xdist workers.

The folders live in pytest's cache directory under a key of the builder's sources and the transformers
version, built under a file lock by whichever worker asks first.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import pytest


def _sources_key() -> str:
    import transformers

    import clipdpo_cli.models.mobilevlm as mobilevlm  # its classes build the mobilevlm_v2 fixture
    import clipdpo_mini.models.families as families

    digest = hashlib.sha256(transformers.__version__.encode())
    for root in (os.path.dirname(families.__file__), os.path.dirname(mobilevlm.__file__)):
        for folder, _, files in sorted(os.walk(root)):
            for name in sorted(files):
                if name.endswith((".py", ".json", ".jinja")):
                    with open(os.path.join(folder, name), "rb") as fh:
                        digest.update(name.encode() + fh.read())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def family_dir(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """family_dir(key) -> the folder of that family's checkpoint (built on first use)."""
    from filelock import FileLock

    from clipdpo_mini.models.families import build_family

    base = request.config.cache.mkdir("clipdpo-families") / _sources_key()
    base.mkdir(parents=True, exist_ok=True)

    def get(key: str) -> str:
        out = base / key
        with FileLock(str(base / f"{key}.lock")):
            if not (out / ".complete").exists():
                build_family(key, str(out))
                (out / ".complete").write_text("ok")
        return str(out)

    return get
