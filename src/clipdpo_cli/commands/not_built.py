"""Placeholder for a subcommand whose stage is not built yet: says so and exits 2."""

from collections.abc import Callable
from typing import Any

import typer


def placeholder(name: str, summary: str) -> Callable[..., Any]:
    def command(ctx: typer.Context) -> None:
        typer.echo(f"clipdpo {name}: not built yet in this version ({summary}).", err=True)
        raise typer.Exit(2)

    command.__doc__ = f"clipdpo {name} ...  (not built yet: exits 2)\n\n{summary}."
    return command
