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
    # the lent GPU image's versions (docs/benchmarks.md, "The device kit"): the code must run there
    image = {"torch": "2.11.0", "torchvision": "0.26.0", "transformers": "5.17.0", "accelerate": "1.15.0"}
    assert [name for name, v in image.items() if not bounds[name].contains(v)] == []


def test_every_third_party_module_the_package_imports_is_declared():
    """A module src/ imports (even lazily, inside a function) must come from a declared requirement, or a
    fresh install (CI, a user's `pip install`) lacks it while this machine's venv hides the gap."""
    import ast
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    from packaging.requirements import Requirement

    declared = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        declared |= {canonicalize_name(Requirement(r).name) for r in extra}
    modules: set[str] = set()
    for path in (REPO / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    owners = packages_distributions()
    missing = {}
    for module in sorted(modules - set(sys.stdlib_module_names) - {"clipdpo_cli"}):
        dists = {canonicalize_name(d) for d in owners.get(module, [])}
        if dists and not dists & declared:
            missing[module] = sorted(dists)
    assert missing == {}
