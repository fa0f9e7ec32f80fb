"""pyproject.toml's requirements accept the versions the suite runs with, and TRL has an upper bound."""

from __future__ import annotations

import sys
from importlib.metadata import version

import pytest

from tests.conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def requirements() -> list:
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_installed_versions_meet_the_declared_bounds():
    unmet = [f"{r.name} {version(r.name)} not {r.specifier}" for r in requirements()
             if not r.specifier.contains(version(r.name), prereleases=True)]  # fmt: skip
    assert unmet == []


def test_lower_bounds_are_the_verified_majors_and_trl_stops_before_2():
    from packaging.version import Version

    bounds = {r.name.lower(): r.specifier for r in requirements()}
    assert not bounds["trl"].contains("2.0.0") and bounds["trl"].contains("1.16.0")
    assert not bounds["trl"].contains("1.15.0")  # the TRL internals train/trainer.py overrides
    assert not bounds["transformers"].contains("4.57.0")  # transformers 5 behaviour
    for name in ("transformers", "trl", "accelerate", "peft", "datasets", "deepspeed", "open_clip_torch"):
        installed = Version(version(name))
        assert bounds[name].contains(f"{installed.major}.{installed.minor}.0"), name
    assert bounds["torch"].contains("2.14.1")  # the torch that lies on the project's machines
