"""One declaration per option: a settings dataclass field that carries its command-line option.

In the style of TRL's config dataclasses (the field and its help together), `setting(...)` gives a field its
default, its help and how it appears on the command line; commands/settings_options.py turns the fields of
a `*Settings` dataclass into typer options (and reads `--config FILE` by the same names). Pure metadata: no
typer here, so the stage layer can declare its settings with it.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import MISSING, field
from typing import Any


def setting(
    default: Any = MISSING,
    help: str = "",
    *,
    trl: tuple[str, ...] = (),
    to_trl: Callable[..., dict[str, Any]] | None = None,
    source: str | None = None,
    flags: tuple[str, ...] = (),
    cli_type: Any = None,
    cli_default: Any = MISSING,
    parse: Callable[[Any], Any] | None = None,
    shared: bool = False,
    aliases: tuple[str, ...] = (),
    default_factory: Callable[[], Any] | None = None,
    **option: Any,
) -> Any:
    """A settings field that is also a command-line option.

    help: the option's help (one text per flag across commands: test_flag_catalogue.py). source: where the
    default comes from ("the paper (Sec. 5)"), appended to the help. flags: the option's declaration
    ("--lora", "--x/--no-x", with hidden aliases as typer accepts them; default --name-with-dashes).
    cli_type / cli_default / parse: the command-line type and default when they differ from the field's, and
    the function from one to the other. shared: the option's annotation is declared once in commands/ and
    passed to settings_options (QuietOpt...). aliases: old flags, accepted (hidden, with a note on stderr)
    for a release after a rename. trl / to_trl: the TRL config fields it decides (train only).
    `option`: more typer.Option arguments (min=1, show_default=False, hidden=True).
    """
    metadata = {
        "help": help, "trl": trl, "to_trl": to_trl, "source": source, "flags": flags, "cli_type": cli_type,
        "cli_default": cli_default, "parse": parse, "shared": shared, "option": option, "aliases": aliases,
    }  # fmt: skip
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def declared(cls: type, names: tuple[str, ...] | None = None) -> list[dataclasses.Field[Any]]:
    """The fields of a settings dataclass that are options (declared with `setting`), in declaration order;
    only those in `names` when given."""
    fields = [f for f in dataclasses.fields(cls) if "help" in f.metadata]
    return fields if names is None else [f for f in fields if f.name in names]
