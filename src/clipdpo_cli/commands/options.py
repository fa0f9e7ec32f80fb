"""Options shared by the stage commands, declared once and added to each command by `stage_command`."""

import enum
import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from clipdpo_cli.commands.input_options import INPUT_PARAMS, input_options
from clipdpo_cli.io.progress import DEFAULT_EVERY
from clipdpo_cli.io.runner import IOSettings, check_io


class OnError(str, enum.Enum):
    fail = "fail"
    skip = "skip"


def _check_device(value: str) -> str:
    """--device checked when parsed (models.device.resolve_device), not once a model is loading."""
    if value != "auto":
        from clipdpo_cli.io.errors import UsageError
        from clipdpo_cli.models.device import resolve_device

        try:
            resolve_device(value)
        except UsageError as exc:
            raise typer.BadParameter(str(exc).removeprefix("--device").lstrip(": ")) from None
    return value


DeviceOpt = Annotated[
    str,
    typer.Option(
        callback=_check_device,
        help="Torch device: auto (cuda if visible, else cpu; with --shard K/N or a SLURM array, visible GPU "
        "K mod n), cpu, cuda, cuda:1, ...",
    ),
]


def shard_device(device: str, shard: str | None, quiet: bool = False) -> str:
    """--device for a run of shard `shard` (--shard K/N, or SLURM's array variables when None).

    'auto' with a shard of more than one becomes the visible GPU K mod n (models.device.resolve_device says
    which on stderr); anything else, or a whole input, is returned unchanged.
    """
    if device != "auto":
        return device
    from clipdpo_cli.io.shard import Shard

    parsed = Shard.parse(shard)
    if parsed.is_whole:
        return device
    from clipdpo_cli.models.device import resolve_device

    return str(resolve_device(device, parsed, quiet=quiet))


class InputOrder(str, enum.Enum):
    grouped = "grouped"
    any = "any"


InputOrderOpt = Annotated[
    InputOrder,
    typer.Option(
        help="'grouped': the records of an image are adjacent (as caption and score write them); "
        "'any': spill them to disk first."
    ),
]


OnErrorOpt = Annotated[
    OnError,
    typer.Option(help="On a bad input line or record: stop with exit 1 (fail), or skip and count it."),
]
QUIET_HELP = "Nothing on stderr but errors: no progress, no summary, no library bars or warnings."
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)]
ProgressEveryOpt = Annotated[
    float,
    typer.Option(
        min=0,
        metavar="SECONDS",
        help="Off a terminal (a SLURM log), print a progress line this often; 0: never. "
        "On a terminal a bar shows instead.",
    ),
]

_IO_PARAMS: list[tuple[str, Any, Any]] = [
    (
        "output",
        Annotated[str | None, typer.Option("--output", "-o", help="Write here instead of stdout (.gz ok).")],
        None,
    ),
    ("on_error", OnErrorOpt, OnError.fail),
    (
        "shard",
        Annotated[
            str | None,
            typer.Option(
                help="Process shard K of N (0-based 'K/N'); default from SLURM_ARRAY_TASK_ID/_COUNT.",
                show_default=False,
            ),
        ],
        None,
    ),
    (
        "resume",
        Annotated[bool, typer.Option("--resume", help="With -o FILE: append, skipping ids already in FILE.")],
        False,
    ),
    ("quiet", QuietOpt, False),
    ("progress_every", ProgressEveryOpt, DEFAULT_EVERY),
]

_INPUT_HELP = (
    "Input records: JSONL (a path, '-' for stdin, the default; .jsonl.gz is read transparently), or a JSON "
    "array, HF dataset, parquet, arrow or webdataset input (see --input-format)."
)

RejectsOpt = Annotated[
    str | None, typer.Option(help="Also write every dropped record, with its reject_reason, to this file.")
]
ScoreFieldOpt = Annotated[
    str, typer.Option(help="Field holding the CLIP score of a caption (or of a QA record's answer).")
]


# A command's own options that name files it reads (caption's --prompts and --chat-template, categorize's and
# score's --prototypes, perturb's --objects): io/outputs.py compares them with the outputs like the INPUT.
SIDE_INPUTS = ("prompts", "chat_template", "prototypes", "objects")


def io_settings(kwargs: dict[str, Any], ctx: typer.Context, lines_only: str | None) -> IOSettings:
    """Pop the shared I/O and input options out of a command's arguments (see stage_command)."""
    return IOSettings(
        input=kwargs.pop("input"),
        output=kwargs.pop("output"),
        quiet=kwargs.pop("quiet"),
        on_error=kwargs.pop("on_error").value,
        shard=kwargs.pop("shard"),
        resume=kwargs.pop("resume"),
        rejects=kwargs.get("rejects"),
        progress_every=kwargs.pop("progress_every"),
        source=input_options(kwargs, ctx),
        lines_only=lines_only,
        side_inputs=tuple(
            (f"--{name.replace('_', '-')}", kwargs[name])
            for name in SIDE_INPUTS
            if isinstance(kwargs.get(name), str)
        ),
    )


def stage_command(
    input_help: str = _INPUT_HELP, lines_only: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the INPUT argument and the shared I/O options; it receives them as `io=IOSettings`.

    `lines_only`: the command (of this name) reads JSON lines only: any other format is refused first.

    The decorated function declares only its own options plus a parameter `io`. A `rejects` parameter,
    if declared, is copied into `io.rejects` too.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(func, eval_str=True)
        own = [p for name, p in sig.parameters.items() if name != "io"]
        input_param = inspect.Parameter(
            "input",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[str, typer.Argument(help=input_help, show_default=True)],
            default="-",
        )
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default)
            for name, ann, default in [*_IO_PARAMS, *INPUT_PARAMS]
        ]
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        # typer passes its Context to one parameter only: the command's own (or settings_options') if any
        own_ctx = next((p.name for p in own if p.annotation is typer.Context), None)
        context = [] if own_ctx else [
            inspect.Parameter("stage_context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        ]  # fmt: skip

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            ctx = kwargs[own_ctx] if own_ctx else kwargs.pop("stage_context")
            io = io_settings(kwargs, ctx, lines_only)
            check_io(io)  # now, not after minutes of loading a model
            if isinstance(kwargs.get("device"), str):
                kwargs["device"] = shard_device(kwargs["device"], io.shard, io.quiet)
            return func(io=io, **kwargs)

        params = [input_param, *own, *shared, *context]
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # typer must see the new signature, not the original
        return wrapper

    return decorate
