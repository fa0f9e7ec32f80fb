"""Command-line options generated from a settings dataclass whose fields carry their option in metadata.

`settings_options(TrainSettings, shared=...)` adds one typer option per `train.settings.setting(...)` field
to a command (as `stage_command` adds the I/O options); the command receives their values, parsed to the
field's type, as one `settings` dict it can pass to the dataclass.
"""

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING
from typing import Annotated, Any

import typer


def option_help(f: dataclasses.Field[Any]) -> str:
    """The field's help, and where its default comes from."""
    text, source = f.metadata["help"], f.metadata["source"]
    return f"{text} Default from {source}." if source else text


def option_parameter(f: dataclasses.Field[Any], shared: Mapping[str, Any]) -> inspect.Parameter:
    """The typer parameter of one settings field."""
    meta = f.metadata
    if meta["shared"]:
        annotation = shared[f.name]
    else:
        kind = meta["cli_type"] if meta["cli_type"] is not None else f.type
        annotation = Annotated[kind, typer.Option(*meta["flags"], help=option_help(f), **meta["option"])]
    default = meta["cli_default"] if meta["cli_default"] is not MISSING else f.default
    return inspect.Parameter(
        f.name,
        inspect.Parameter.KEYWORD_ONLY,
        annotation=annotation,
        default=inspect.Parameter.empty if default is MISSING else default,
    )


def settings_options(
    fields: Iterable[dataclasses.Field[Any]], shared: Mapping[str, Any]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command one option per field (their metadata as train.settings.setting writes it).

    The decorated function declares its own parameters plus `settings`, which receives {field name: value},
    each value parsed to the field's type (`parse`). `shared` holds the declared-once annotations of the
    fields marked shared (QuietOpt, ProgressEveryOpt, MaxPixelsOpt).
    """
    fields = list(fields)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(func, eval_str=True)
        own = [p for name, p in sig.parameters.items() if name != "settings"]
        generated = [option_parameter(f, shared) for f in fields]

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            values = {}
            for f in fields:
                value = kwargs.pop(f.name)
                parse = f.metadata["parse"]
                values[f.name] = parse(value) if parse is not None else value
            return func(settings=values, **kwargs)

        first = [p for p in own if p.default is inspect.Parameter.empty]  # ctx, the arguments
        rest = [p for p in own if p.default is not inspect.Parameter.empty]
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in (*first, *generated, *rest)]
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # typer must see the new signature, not the original
        return wrapper

    return decorate
