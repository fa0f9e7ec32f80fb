"""The `clipdpo` command: a typer app whose subcommands live one per module in clipdpo_cli.commands.

Heavy libraries (torch, open_clip, transformers) are imported inside the stage code, never here, so that
`clipdpo --help` stays instant.
"""

from __future__ import annotations

import errno
import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

import typer

from clipdpo_cli import __version__
from clipdpo_cli.io.errors import ClipdpoError, Interrupted, PipeClosed
from clipdpo_cli.io.log import error

# Order as in the pipeline; each module defines NAME, SUMMARY (one line for the command list) and
# command, whose docstring starts with a one-line pipeline example (and optionally CONTEXT).
COMMAND_MODULES = (
    "caption",
    "ask",
    "perturb",
    "score",
    "categorize",
    "filter",
    "pair",
    "export",
    "ref_logps",
    "train",
    "respond",
    "eval_amber",
    "eval_pope",
    "eval_chair",
    "eval_zeroshot",
    "probe",
    "report",
    "models",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clipdpo {__version__}")
        raise typer.Exit()


def build_app(only: str | None = None) -> typer.Typer:
    """The app with every command, or with just the module `only` (quicker start-up when running one)."""
    app = typer.Typer(
        name="clipdpo",
        help="CLIP-DPO as composable commands over JSONL: caption | score | categorize | filter | pair, "
        "then train with DPO and evaluate. Data on stdout, logs on stderr.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )

    @app.callback()
    def root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Show version."
        ),
    ) -> None:
        """CLIP-DPO toolkit."""

    for module_name in COMMAND_MODULES if only is None else (only,):
        module = importlib.import_module(f"clipdpo_cli.commands.{module_name}")
        app.command(
            module.NAME,
            short_help=getattr(module, "SUMMARY", None),
            context_settings=getattr(module, "CONTEXT", None),
        )(quiet_aware(module.command, module.NAME))
    return app


def quiet_aware(command: Callable[..., Any], name: str = "") -> Callable[..., Any]:
    """The command, run with the libraries silenced (io.quiet) when it was given --quiet; an optional
    dependency it imports where it needs it and finds missing is the one-line MissingExtra naming the extra
    that installs it (io/extras.py), wherever in the command the import is."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from clipdpo_cli.io.quiet import silenced_libraries

        try:
            with silenced_libraries(bool(kwargs.get("quiet"))):
                return command(*args, **kwargs)
        except ModuleNotFoundError as exc:
            from clipdpo_cli.io.extras import missing_extra

            missing = missing_extra(exc.name or "", name)
            if missing is None:
                raise
            raise missing from None

    return run


def _named_module(args: list[str]) -> str | None:
    """The command module of `clipdpo NAME ...`; None for anything else (--help, a typo: the full app)."""
    module = args[0].replace("-", "_") if args else ""
    return module if module in COMMAND_MODULES and args[0] == module.replace("_", "-") else None


def _stage_name(argv: list[str]) -> str:
    return next((a for a in argv if not a.startswith("-")), "")


WRITE_FAILURES = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app and turns known failures into one line on stderr and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    command = _stage_name(args)
    try:
        build_app(_named_module(args))(args=args, prog_name="clipdpo")
    except PipeClosed:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except Interrupted as exc:
        error(command, str(exc), label="")
        sys.exit(exc.exit_code)
    except ClipdpoError as exc:
        error(command, str(exc))
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.errno not in WRITE_FAILURES:
            raise
        # A full disk or a file-size limit: one line; output files end at their last whole line.
        error(command, f"cannot write the output: {exc.strerror or exc}")
        devnull = os.open(os.devnull, os.O_WRONLY)
        if sys.stdout is not None:  # what stdout still buffers cannot be written either
            os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
