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


def test_make_installs_every_declared_extra():
    """`make test` installs every extra pyproject.toml declares, so the suite runs with all of them."""
    import re

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    makefile = (REPO / "Makefile").read_text()
    extras = re.search(r"^EXTRAS := (.+)$", makefile, flags=re.M)
    assert extras and "-e '.[$(EXTRAS)]'" in makefile
    assert re.search(r"^test: \$\(ALL_STAMP\)", makefile, flags=re.M)  # the target that installs them all
    assert sorted(extras.group(1).split(",")) == sorted(project["optional-dependencies"])


def test_the_extras_installed_together_break_no_requirement():
    """Every installed distribution's requirements hold (pip check): e.g. wandb 0.25 requires protobuf < 7
    while clipdpo's other dependencies run with protobuf 7, so its extra must ask for wandb >= 0.26."""
    import subprocess

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (wandb,) = (Requirement(r) for r in project["optional-dependencies"]["wandb"])
    assert not wandb.specifier.contains("0.25.1") and wandb.specifier.contains("0.26.0")
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    for r in (Requirement(r) for r in project["optional-dependencies"]["wandb"] + project["dependencies"]):
        assert r.specifier.contains(version(r.name), prereleases=True), r  # installed, within the bounds
