"""Command-line options generated from a settings dataclass whose fields carry their option in metadata.

`settings_options(TrainSettings, shared=...)` adds one typer option per `train.settings.setting(...)` field
to a command (as `stage_command` adds the I/O options); the command receives their values, parsed to the
field's type, as one `settings` dict it can pass to the dataclass. With `config=True` the command also
takes `--config FILE`: a YAML (or JSON) mapping of those same names (field names, or the flags without
their dashes) to values, converted and checked exactly as typed values are; an option typed on the command
line wins over the file. The file is read first (an eager option) and its values become the options'
defaults (click's default_map), so every layer of the command sees them as it sees typed values.
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


def alias_parameters(f: dataclasses.Field[Any], shared: Mapping[str, Any]) -> list[inspect.Parameter]:
    """Hidden options for a field's old flags (`setting(aliases=("--max-length",))`): kept for a release."""
    params = []
    for i, flag in enumerate(f.metadata.get("aliases", ())):
        kind = f.metadata["cli_type"] if f.metadata["cli_type"] is not None else f.type
        option = typer.Option(flag, hidden=True, show_default=False)
        params.append(
            inspect.Parameter(
                f"{f.name}__alias{i}",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[kind | None, option],
                default=None,
            )
        )
    return params


def apply_aliases(ctx: typer.Context, kwargs: dict[str, Any], fields: list[dataclasses.Field[Any]]) -> None:
    """Move the values given under an old flag to the option's field, saying the new name on stderr."""
    from clipdpo_cli.io.errors import UsageError

    for f in fields:
        new = f.metadata["flags"][0] if f.metadata["flags"] else "--" + f.name.replace("_", "-")
        for i, flag in enumerate(f.metadata.get("aliases", ())):
            value = kwargs.pop(f"{f.name}__alias{i}")
            if value is None:
                continue
            source = ctx.get_parameter_source(f.name)
            if source is not None and source.name == "COMMANDLINE":
                raise UsageError(f"{flag} is the old name of {new}: give only one of them")
            kwargs[f.name] = value
            note_renamed(ctx, flag, new)


def note_renamed(ctx: typer.Context, old: str, new: str) -> None:
    """Say on stderr (unless --quiet) that a hidden old flag was used, and its new name."""
    from clipdpo_cli.io.log import info

    info(ctx.info_name or "", f"{old} is now {new} (the old name goes in a later release)",
         bool(ctx.params.get("quiet")))  # fmt: skip


CONFIG_HELP = (
    "A YAML or JSON file of this command's options by name (some_option: value, or some-option: value); "
    "options typed on the command line win."
)


def read_settings_file(path: str) -> dict[str, Any]:
    """--config FILE as a mapping; InputError in one line when it cannot be read or is not a mapping."""
    import os

    import yaml

    from clipdpo_cli.io.errors import InputError

    if os.path.isdir(path):
        raise InputError(f"--config {path} is a folder: pass a YAML file")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        raise InputError(f"--config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--config {path}: cannot read it: {exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"--config {path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise InputError(f"--config {path}: must be a mapping of option names to values")
    return data


def settings_file_defaults(ctx: typer.Context, path: str, names: set[str]) -> dict[str, Any]:
    """The --config file's values by option name, for the options in `names`.

    Each value is checked now by the option's own click type (ranges, choices, enums, lists), naming the
    file; click then takes it as that option's default (ctx.default_map), so a typed option wins and every
    layer of the command (stage_command's --device and side-input checks) sees the file's values.
    """
    from clipdpo_cli.io.errors import UsageError

    data = read_settings_file(path)
    params = {p.name: p for p in ctx.command.params}
    unknown = [str(k) for k in data if str(k).replace("-", "_") not in names]
    if unknown:
        raise UsageError(
            f"--config {path}: {ctx.info_name} has no option {', '.join(sorted(unknown))} "
            f"(it reads: {', '.join(sorted(names))})"
        )
    defaults = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        param = params[name]
        if param.multiple and not isinstance(value, list):
            value = [value]
        try:
            param.process_value(ctx, value)
        except typer.BadParameter as exc:
            raise UsageError(f"--config {path}: {key}: {exc.message}") from None
        defaults[name] = value
    return defaults


def config_callback(names: set[str]) -> Callable[[typer.Context, str | None], str | None]:
    """--config's eager callback: the file's values become the defaults of the options not typed."""

    def load(ctx: typer.Context, path: str | None) -> str | None:
        if path is not None:
            ctx.default_map = {**(ctx.default_map or {}), **settings_file_defaults(ctx, path, names)}
        return path

    return load


def config_parameter(names: set[str]) -> inspect.Parameter:
    """The `--config FILE` parameter of a command whose options are `names`."""
    option = typer.Option(
        "--config", metavar="FILE", help=CONFIG_HELP, show_default=False, is_eager=True,
        callback=config_callback(names),
    )  # fmt: skip
    return inspect.Parameter(
        "config", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[str | None, option], default=None
    )


def settings_options(
    fields: Iterable[dataclasses.Field[Any]], shared: Mapping[str, Any], config: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command one option per field (their metadata as train.settings.setting writes it).

    The decorated function declares its own parameters plus `settings`, which receives {field name: value},
    each value parsed to the field's type (`parse`). `shared` holds the declared-once annotations of the
    fields marked shared (QuietOpt, ProgressEveryOpt, MaxPixelsOpt). `config`: add `--config FILE` (the
    module's docstring), which may set any of `fields`.
    """
    fields = list(fields)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(func, eval_str=True)
        own = [p for name, p in sig.parameters.items() if name != "settings"]
        generated = [option_parameter(f, shared) for f in fields]
        # typer passes its Context to one parameter only: the command's own when it declares one
        own_ctx = next((p.name for p in own if p.annotation is typer.Context), None)

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            if config:
                del kwargs["config"]  # read already: its values came as the options' defaults
            ctx = kwargs[own_ctx] if own_ctx else kwargs.pop("settings_context")
            apply_aliases(ctx, kwargs, fields)
            values = {}
            for f in fields:
                value = kwargs.pop(f.name)
                parse = f.metadata["parse"]
                values[f.name] = parse(value) if parse is not None else value
            return func(settings=values, **kwargs)

        first = [p for p in own if p.default is inspect.Parameter.empty]  # ctx, the arguments
        rest = [p for p in own if p.default is not inspect.Parameter.empty]
        if config:
            generated.append(config_parameter({f.name for f in fields}))
        generated += [p for f in fields for p in alias_parameters(f, shared)]
        if own_ctx is None:
            generated.append(
                inspect.Parameter(
                    "settings_context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context
                )
            )
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in (*first, *generated, *rest)]
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # typer must see the new signature, not the original
        return wrapper

    return decorate
