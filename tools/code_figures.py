"""Size figures of the source tree (issue 30's targets): functions over 60 lines, modules over 400 lines, and
the places that write to stderr by hand (`print(..., file=sys.stderr)`, `typer.echo(..., err=True)`).

    python tools/code_figures.py [SRC]          # default: src/clipdpo_cli; --list names each one

A function's length is its lines from `def` (decorators excluded) to its last line, nested ones counted in
their parent too; a module's is its line count.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

FUNCTION_LINES = 60
MODULE_LINES = 400


def _stderr_print(node: ast.AST) -> bool:
    """print(..., file=sys.stderr) (also file=sys.stderr if ... else ...) or typer.echo(..., err=True)."""
    if not isinstance(node, ast.Call):
        return False
    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
    for k in node.keywords:
        if name == "print" and k.arg == "file" and "sys.stderr" in ast.unparse(k.value):
            return True
        if name == "echo" and k.arg == "err" and ast.unparse(k.value) == "True":
            return True
    return False


def figures(src: Path) -> dict[str, list[str]]:
    """{kind: ['path:line ...', ...]} for long functions, long modules and stderr prints."""
    found: dict[str, list[str]] = {"long functions": [], "long modules": [], "stderr prints": []}
    for path in sorted(src.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(src.parent).as_posix()
        lines = len(text.splitlines())
        if lines > MODULE_LINES:
            found["long modules"].append(f"{name} ({lines} lines)")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > FUNCTION_LINES:
                    found["long functions"].append(f"{name}:{node.lineno} {node.name} ({length} lines)")
            elif _stderr_print(node):
                found["stderr prints"].append(f"{name}:{node.lineno}")
    return found


def main(argv: list[str]) -> None:
    show = "--list" in argv
    args = [a for a in argv if a != "--list"]
    src = Path(args[0] if args else "src/clipdpo_cli")
    for kind, entries in figures(src).items():
        print(f"{kind}: {len(entries)}")
        if show:
            for entry in entries:
                print(f"  {entry}")


if __name__ == "__main__":
    main(sys.argv[1:])
