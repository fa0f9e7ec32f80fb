"""pyproject.toml's requirements accept the versions the suite runs with, and TRL has an upper bound."""

from __future__ import annotations

import functools
import sys
from importlib.metadata import version

import pytest

from tests.conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


# the extras installed wherever the suite runs (the shared venv; `make test` installs every extra)
INSTALLED_EXTRAS = ("dev", "train", "inputs", "zeroshot")
# what `pip install clipdpo-cli` (filter, pair, ...) must not pull in, directly or through another package
NOT_CORE = {"deepspeed", "trl", "peft", "accelerate", "datasets", "webdataset", "tensorboard", "scipy",
            "matplotlib", "openai", "wandb"}  # fmt: skip


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def requirements() -> list:
    from packaging.requirements import Requirement

    extras = [r for e in INSTALLED_EXTRAS for r in project()["optional-dependencies"][e]]
    return [Requirement(r) for r in project()["dependencies"] + extras]


def test_installed_versions_meet_the_declared_bounds():
    unmet = [f"{r.name} {version(r.name)} not {r.specifier}" for r in requirements()
             if not r.specifier.contains(version(r.name), prereleases=True)]  # fmt: skip
    assert unmet == []


def test_lower_bounds_are_the_verified_majors_and_trl_stops_before_2():
    from packaging.version import Version

    bounds = {r.name.lower(): r.specifier for r in requirements()}  # datasets: in train and inputs, alike
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
    for module in sorted(modules - set(sys.stdlib_module_names) - {"clipdpo_cli", "clipdpo_mini"}):
        dists = {canonicalize_name(d) for d in owners.get(module, [])}
        if dists and not dists & declared:
            missing[module] = sorted(dists)
    assert missing == {}


def eager_nodes(node):
    """The nodes that run when a module is imported: not inside a function or an `if TYPE_CHECKING:`."""
    import ast

    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from (n for orelse in child.orelse for n in [orelse, *eager_nodes(orelse)])
            continue
        yield child
        yield from eager_nodes(child)


def product_imports(top_level_only: bool = False) -> dict[str, list[str]]:
    """Third-party top-level modules src/clipdpo_cli imports -> where ('file:line'); with `top_level_only`,
    only the imports that run when a module is imported (not inside a function or `if TYPE_CHECKING:`)."""
    import ast

    found: dict[str, list[str]] = {}
    for path in sorted((REPO / "src" / "clipdpo_cli").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = list(eager_nodes(tree)) if top_level_only else list(ast.walk(tree))
        for node in nodes:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in {"clipdpo_cli", "__future__"}:
                    found.setdefault(top, []).append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


@functools.cache
def owners() -> dict[str, list[str]]:
    from importlib.metadata import packages_distributions

    return packages_distributions()


def distributions_of(module: str) -> set[str]:
    from packaging.utils import canonicalize_name

    return {canonicalize_name(d) for d in owners().get(module, [])}


def names(requirements: list[str]) -> set[str]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return {canonicalize_name(Requirement(r).name) for r in requirements}


def test_the_core_pulls_in_no_training_stack():
    """`pip install clipdpo-cli` (to filter, pair, score...) installs neither DeepSpeed, TRL, peft, datasets,
    webdataset, tensorboard nor scipy: not as its own requirements, nor through a core requirement's own
    (the installed metadata, followed to the bottom; requirements behind an extra marker are not pulled)."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    core = names(project()["dependencies"])
    assert core & NOT_CORE == set()
    pulled, todo = set(), sorted(core)
    while todo:
        name = todo.pop()
        if name in pulled:
            continue
        pulled.add(name)
        try:
            needs = requires(name) or []
        except PackageNotFoundError:
            continue
        for text in needs:
            r = Requirement(text)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(r.name))
    assert pulled & NOT_CORE == set()
    assert {"trl", "deepspeed", "peft", "accelerate", "datasets", "tensorboard"} <= names(
        project()["optional-dependencies"]["train"]
    )


def test_each_optional_import_names_the_extra_that_declares_it():
    """A module src/clipdpo_cli imports that the core does not install is in io/extras.py's table, and the
    extras named there are the ones pyproject.toml declares it in (so the one-line message is right); a
    module in the table is not in the core."""
    from clipdpo_cli.io.extras import EXTRAS

    extras = {extra: names(reqs) for extra, reqs in project()["optional-dependencies"].items()}
    core = names(project()["dependencies"])
    unnamed = {}
    for module, where in product_imports().items():
        dists = distributions_of(module)
        if dists and not dists & core and module not in EXTRAS:
            unnamed[module] = where
    assert unnamed == {}
    for module, named in EXTRAS.items():
        dists = distributions_of(module) or {module}
        assert not dists & core, f"{module} is in the core"
        declaring = {extra for extra, reqs in extras.items() if dists & reqs and extra not in ("dev",)}
        assert set(named) == declaring, f"{module}: io/extras.py names {named}, pyproject {sorted(declaring)}"


def test_optional_modules_are_imported_only_where_they_are_used():
    """Importing any module of the product needs only the core: every import that runs at import time
    (module level) is of a core dependency, so `clipdpo filter` loads without the extras."""
    core = names(project()["dependencies"])
    late = {m: w for m, w in product_imports(top_level_only=True).items() if distributions_of(m) - core}
    assert late == {}


def test_make_installs_every_declared_extra():
    """`make test` installs every extra pyproject.toml declares, so the suite runs with all of them; `make
    demo` (and repro-mini) installs what the demo runs: `clipdpo train` (the train extra) and matplotlib."""
    import re

    makefile = (REPO / "Makefile").read_text()
    extras = re.search(r"^EXTRAS := (.+)$", makefile, flags=re.M)
    assert extras and "-e '.[$(EXTRAS)]'" in makefile
    assert re.search(r"^test: \$\(ALL_STAMP\)", makefile, flags=re.M)  # the target that installs them all
    assert sorted(extras.group(1).split(",")) == sorted(project()["optional-dependencies"])
    demo = re.search(r"^DEMO_EXTRAS := (.+)$", makefile, flags=re.M)
    assert demo and "-e '.[$(DEMO_EXTRAS)]'" in makefile
    assert re.search(r"^demo: \$\(STAMP\)", makefile, flags=re.M) and re.search(
        r"^repro-mini: \$\(STAMP\)", makefile, flags=re.M
    )
    chosen = demo.group(1).split(",")
    declared = project()["optional-dependencies"]
    assert set(chosen) <= set(declared) and "train" in chosen
    assert "matplotlib" in {n for e in chosen for n in names(declared[e])}  # report, repro-mini's figure
    assert "clipdpo train" in (REPO / "examples" / "demo.sh").read_text()


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
