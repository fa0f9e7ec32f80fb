"""Every import inside src/clipdpo_cli follows the layers docs/architecture.md allows (its ```layers block),
and every import between the top-level packages under src/ the arrows of its ```packages block (the product,
clipdpo_cli, imports neither its harness clipdpo_mini nor the tests).

Imports are read with `ast`, so lazy imports inside functions count as much as module-level ones, and so do
modules named by a string (`importlib.import_module("clipdpo_cli.x")`, a table of module names, an f-string
`f"clipdpo_cli.commands.{name}"`). A unit is a top-level subpackage (`io`, `models`, ...) or a module at the
package root (`cli`, `qa`, `__init__`); the package root (`__version__`) may be imported by any unit.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "clipdpo_cli"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
# a module named by a string (importlib, `python -m`): clipdpo_cli.x.y, clipdpo_mini, clipdpo_mini.x
MODULE_NAME = re.compile(r"(clipdpo_cli(\.[A-Za-z_]\w*)+|clipdpo_mini(\.[A-Za-z_]\w*)*)$")


def allowed_arrows(text: str, block: str = "layers") -> dict[str, set[str]]:
    """`unit -> unit unit ...` lines of the ```layers (or ```packages) block of architecture.md."""
    match = re.search(rf"^```{block}\n(.*?)^```", text, re.S | re.M)
    assert match, f"docs/architecture.md has no ```{block} block"
    allowed: dict[str, set[str]] = {}
    for line in match.group(1).splitlines():
        if not line.strip():
            continue
        source, arrow, targets = line.partition("->")
        assert arrow, f"not 'unit -> units': {line!r}"
        allowed[source.strip()] = set(targets.split())
    return allowed


def unit_of(module: str, package: Path = PACKAGE) -> str | None:
    """The unit a dotted module name under clipdpo_cli belongs to; None outside the package."""
    parts = module.split(".")
    if parts[0] != "clipdpo_cli":
        return None
    if len(parts) == 1:
        return "__init__"
    head = parts[1]
    if (package / head).is_dir():
        return head if any((package / head).rglob("*.py")) else None  # data/: files, not code
    if (package / f"{head}.py").is_file():
        return head
    return "__init__"  # a name defined in clipdpo_cli/__init__.py (`from clipdpo_cli import __version__`)


def imported_modules(path: Path, package_dir: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in one file, at any depth; relative imports made absolute."""
    rel = path.relative_to(package_dir.parent).with_suffix("")
    package = list(rel.parts[:-1])  # the importing module's package (for __init__ the package itself)
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base == "clipdpo_cli":  # `from clipdpo_cli import io` names a unit, `__version__` the root
                found += [(node.lineno, f"clipdpo_cli.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_NAME.match(node.value):
            found.append((node.lineno, node.value))  # import_module("clipdpo_cli.x.y"), a table of names
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            prefix = str(node.values[0].value)  # importlib.import_module(f"clipdpo_cli.commands.{name}")
            if MODULE_NAME.match(prefix.rstrip(".")) and prefix.endswith("."):
                found.append((node.lineno, prefix.rstrip(".")))
    return found


def unit_of_file(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def disallowed_arrows(allowed: dict[str, set[str]], package: Path = PACKAGE) -> list[str]:
    """'file:line importer -> imported (module)' for each import the allowed arrows do not hold."""
    bad = []
    for path in sorted(package.rglob("*.py")):
        source = unit_of_file(path, package)
        for line, module in imported_modules(path, package):
            target = unit_of(module, package)
            if target in (None, source, "__init__") or target in allowed.get(source, set()):
                continue
            bad.append(f"{path.relative_to(package.parent)}:{line} {source} -> {target} ({module})")
    return bad


ALLOWED = allowed_arrows(ARCHITECTURE.read_text(encoding="utf-8"))
PACKAGE_ARROWS = allowed_arrows(ARCHITECTURE.read_text(encoding="utf-8"), "packages")
TESTS = "tests"  # the suite's own package: nothing under src/ may import it


def top_level_packages(src: Path = SRC) -> list[str]:
    """The import packages under src/ (folders with an __init__.py)."""
    return sorted(p.parent.name for p in src.glob("*/__init__.py"))


def disallowed_package_arrows(allowed: dict[str, set[str]], src: Path = SRC) -> list[str]:
    """'file:line package -> package (module)' for each import between src/'s packages (or of tests) that
    the ```packages arrows do not hold."""
    packages = top_level_packages(src)
    known = {*packages, TESTS}
    bad = []
    for package in packages:
        for path in sorted((src / package).rglob("*.py")):
            for line, module in imported_modules(path, src / package):
                target = module.split(".")[0]
                if target == package or target not in known or target in allowed.get(package, ()):
                    continue
                bad.append(f"{path.relative_to(src)}:{line} {package} -> {target} ({module})")
    return bad


def test_every_unit_has_a_line():
    units = {unit_of_file(p) for p in PACKAGE.rglob("*.py")}
    missing = sorted(units - ALLOWED.keys())
    assert not missing, f"units without a line in architecture.md's layers block: {missing}"
    named = {t for targets in ALLOWED.values() for t in targets} | ALLOWED.keys()
    assert named <= units, f"the layers block names units that do not exist: {sorted(named - units)}"


def test_no_import_runs_against_the_layers():
    bad = disallowed_arrows(ALLOWED)
    assert not bad, "imports that docs/architecture.md's layers do not allow:\n" + "\n".join(bad)


def test_the_product_never_imports_the_harness():
    """clipdpo_cli (the product, the wheel's `clipdpo`) imports nothing of clipdpo_mini (the miniature world,
    the demo's and the tiny-model builders) nor of the tests; clipdpo_mini may import the product."""
    assert sorted(PACKAGE_ARROWS) == top_level_packages(), "every package under src/ needs a ```packages line"
    assert PACKAGE_ARROWS["clipdpo_cli"] == set()
    assert PACKAGE_ARROWS["clipdpo_mini"] == {"clipdpo_cli"}
    bad = disallowed_package_arrows(PACKAGE_ARROWS)
    assert not bad, "imports between packages that docs/architecture.md does not allow:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("def f():\n    from clipdpo_mini.world import KINDS\n", "clipdpo_cli -> clipdpo_mini"),
        ("import clipdpo_mini\n", "clipdpo_cli -> clipdpo_mini"),
        ("m = importlib.import_module('clipdpo_mini.models.tiny_llava')\n", "clipdpo_cli -> clipdpo_mini"),
        ("from tests.fixtures.tiny_amber import build_tiny_amber\n", "clipdpo_cli -> tests"),
    ],
)
def test_the_package_checker_finds_the_product_importing_its_harness(tmp_path, text, expected):
    for package in ("clipdpo_cli", "clipdpo_mini"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "clipdpo_mini" / "demo.py").write_text("from clipdpo_cli.io.errors import InputError\n")
    (tmp_path / "clipdpo_cli" / "cli.py").write_text(text)
    bad = disallowed_package_arrows(PACKAGE_ARROWS, tmp_path)
    assert [b.split(" ", 1)[1].split(" (")[0] for b in bad] == [expected], bad


def test_the_layers_have_no_cycle():
    state: dict[str, int] = {}

    def visit(unit: str, trail: list[str]) -> None:
        if state.get(unit) == 2:
            return
        assert state.get(unit) != 1, f"cycle: {' -> '.join([*trail, unit])}"
        state[unit] = 1
        for target in sorted(ALLOWED.get(unit, ())):
            if target != "__init__":
                visit(target, [*trail, unit])
        state[unit] = 2

    for unit in sorted(ALLOWED):
        visit(unit, [])


@pytest.mark.parametrize(
    ("source", "text", "expected"),
    [
        ("models/lvlm.py", "def f():\n    from clipdpo_cli.train.logps import x\n", "models -> train"),
        ("train/settings.py", "import clipdpo_cli.commands.values\n", "train -> commands"),
        ("stages/export.py", "from ..train.data import pair_row\n", "stages -> train"),
        ("io/jsonl.py", "from clipdpo_cli import commands\n", "io -> commands"),
        ("models/scorer.py", "BACKENDS = {'x:': 'clipdpo_cli.stages.score'}\n", "models -> stages"),
        ("io/runner.py", "m = importlib.import_module(f'clipdpo_cli.commands.{n}')\n", "io -> commands"),
    ],
)
def test_the_checker_finds_an_arrow_up(tmp_path, source, text, expected):
    """The reader catches lazy, plain, relative and package-level imports (on an empty copy of the layout)."""
    fake = tmp_path / "clipdpo_cli"
    for path in PACKAGE.rglob("*.py"):
        if path.parent == PACKAGE or path.name == "__init__.py" and path.parent.parent == PACKAGE:
            target = fake / path.relative_to(PACKAGE)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("")
    (fake / source).parent.mkdir(parents=True, exist_ok=True)
    (fake / source).write_text(text)
    bad = disallowed_arrows(ALLOWED, fake)
    assert [b.split(" ", 1)[1].split(" (")[0] for b in bad] == [expected], bad
