"""Command-line options generated from a settings dataclass whose fields carry their option in metadata.

`settings_options(TrainSettings, shared=...)` adds one typer option per `train.settings.setting(...)` field
to a command (as `stage_command` adds the I/O options); the command receives their values, parsed to the
field's type, as one `settings` dict it can pass to the dataclass. With `config=True` the command also
takes `--config FILE`: a YAML (or JSON) mapping of those same names (field names, or the flags without
their dashes) to values, converted and checked exactly as typed values are; an option typed on the command
line wins over the file.
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


def option_parameter(
    f: dataclasses.Field[Any], shared: Mapping[str, Any], required_in_file: bool = False
) -> inspect.Parameter:
    """The typer parameter of one settings field. `required_in_file`: a required option may come from
    --config instead, so the parser leaves it optional and `check_required` asks for it after the file."""
    meta = f.metadata
    default = meta["cli_default"] if meta["cli_default"] is not MISSING else f.default
    if meta["shared"]:
        annotation = shared[f.name]
    else:
        kind = meta["cli_type"] if meta["cli_type"] is not None else f.type
        help_text = option_help(f)
        if required_in_file and default is MISSING:
            help_text += " Required (here or in --config)."
        annotation = Annotated[kind, typer.Option(*meta["flags"], help=help_text, **meta["option"])]
    if required_in_file and default is MISSING:
        default = None
    return inspect.Parameter(
        f.name,
        inspect.Parameter.KEYWORD_ONLY,
        annotation=annotation,
        default=inspect.Parameter.empty if default is MISSING else default,
    )


def flag_of(f: dataclasses.Field[Any], shared: Mapping[str, Any]) -> str:
    """The field's long flag (`--model`)."""
    if f.metadata["shared"]:
        decls = [d for arg in shared[f.name].__metadata__ for d in getattr(arg, "param_decls", ()) or ()]
        flags = [d for d in decls if d.startswith("--")]
        if flags:
            return flags[0].split("/")[0]
    flags = [d for d in f.metadata["flags"] if d.startswith("--")]
    return flags[0].split("/")[0] if flags else "--" + f.name.replace("_", "-")


def required_fields(fields: list[dataclasses.Field[Any]]) -> list[dataclasses.Field[Any]]:
    """The fields without a default: required options."""
    return [
        f for f in fields
        if (f.metadata["cli_default"] if f.metadata["cli_default"] is not MISSING else f.default) is MISSING
        and f.default_factory is MISSING
    ]  # fmt: skip


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
    import sys

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
            print(f"clipdpo {ctx.info_name}: {flag} is now {new} (the old name goes in a later release)",
                  file=sys.stderr)  # fmt: skip


CONFIG_HELP = (
    "A YAML or JSON file of this command's options by name (batch_size: 8, or batch-size: 8); options typed "
    "on the command line win."
)
PREPARED = "settings_prepared"


def check_required(
    kwargs: dict[str, Any], required: list[dataclasses.Field[Any]], shared: Mapping[str, Any]
) -> None:
    """A usage error naming the first required option given neither on the command line nor in --config."""
    from clipdpo_cli.io.errors import UsageError

    for f in required:
        if kwargs.get(f.name) is None:
            raise UsageError(f"Missing option '{flag_of(f, shared)}' (give it here or in --config)")


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


def apply_settings_file(ctx: typer.Context, path: str, kwargs: dict[str, Any], names: set[str]) -> None:
    """Set kwargs[name] from the --config file for every option in `names` not typed on the command line.

    Each value goes through the option's own click type (ranges, choices, enums, lists), as if typed.
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
    for key, value in data.items():
        name = str(key).replace("-", "_")
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            continue  # typed: wins over the file
        param = params[name]
        if param.multiple and not isinstance(value, list):
            value = [value]
        try:
            kwargs[name] = param.process_value(ctx, value)
        except typer.BadParameter as exc:
            raise UsageError(f"--config {path}: {key}: {exc.message}") from None


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

    required = required_fields(fields) if config else []

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(func, eval_str=True)
        own = [p for name, p in sig.parameters.items() if name != "settings"]
        generated = [option_parameter(f, shared, required_in_file=config) for f in fields]
        # typer passes its Context to one parameter only: the command's own when it declares one
        own_ctx = next((p.name for p in own if p.annotation is typer.Context), None)

        def prepare(kwargs: dict[str, Any]) -> None:
            """Old flags, then --config, then the required check: kwargs as if all were typed. An outer
            decorator (stage_command) calls it first, so that paths set in the file are checked too."""
            if kwargs.get(PREPARED):
                return
            path = kwargs.pop("config", None) if config else None
            ctx = kwargs[own_ctx] if own_ctx else kwargs.pop("settings_context")
            apply_aliases(ctx, kwargs, fields)
            if path is not None:
                apply_settings_file(ctx, path, kwargs, {f.name for f in fields})
            check_required(kwargs, required, shared)
            if own_ctx is None:
                kwargs["settings_context"] = ctx
            kwargs[PREPARED] = True

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            prepare(kwargs)
            kwargs.pop(PREPARED)
            kwargs.pop("settings_context", None)
            values = {}
            for f in fields:
                value = kwargs.pop(f.name)
                parse = f.metadata["parse"]
                values[f.name] = parse(value) if parse is not None else value
            return func(settings=values, **kwargs)

        first = [p for p in own if p.default is inspect.Parameter.empty]  # ctx, the arguments
        rest = [p for p in own if p.default is not inspect.Parameter.empty]
        if config:
            config_option = typer.Option("--config", metavar="FILE", help=CONFIG_HELP, show_default=False)
            generated.append(
                inspect.Parameter(
                    "config",
                    inspect.Parameter.KEYWORD_ONLY,
                    annotation=Annotated[str | None, config_option],
                    default=None,
                )
            )
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
        wrapper.prepare_settings = prepare  # type: ignore[attr-defined]
        return wrapper

    return decorate
