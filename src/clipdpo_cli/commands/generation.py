"""The generation options on the command line: models/generation_settings.py declares the group once;
`generation_command` gives a command its own settings' options and the group's (plus --config FILE), and the
annotations below (DtypeOpt, ChatTemplateOpt, MaxPixelsOpt, `engine_options`...) are the same declarations
for the commands that take single options of the group."""

import functools
import inspect
from collections.abc import Callable
from typing import Any

from clipdpo_cli.commands.options import DeviceOpt
from clipdpo_cli.commands.settings_options import option_parameter, settings_options
from clipdpo_cli.io.setting import declared
from clipdpo_cli.models.device import Precision
from clipdpo_cli.models.generation_settings import Engine, GenerationSettings, generation_options

__all__ = ["Engine", "generation_command"]

Dtype = Precision  # the one precision enum (models/device.py); --dtype is its Use.weights

GENERATION = {f.name: f for f in declared(GenerationSettings)}
SHARED = {"device": DeviceOpt}


def _annotation(name: str) -> Any:
    return option_parameter(GENERATION[name], SHARED).annotation


DtypeOpt = _annotation("dtype")
BatchSizeOpt = _annotation("batch_size")
TemperatureOpt = _annotation("temperature")
TopPOpt = _annotation("top_p")
MaxNewTokensOpt = _annotation("max_new_tokens")
SeedOpt = _annotation("seed")
ChatTemplateOpt = _annotation("chat_template")
MaxPixelsOpt = _annotation("max_pixels")


def generation_command(
    stage: type, shared: dict[str, Any] | None = None, **group: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`settings_options` for a generating command: the stage settings' own options, then the generation
    group's (`generation_options(stage, **group)`: without=, model=, model_help=), and --config FILE.

    `shared`: annotations of the stage's fields declared `shared` (workers, image_root, input_order).
    """
    model, *rest = generation_options(stage, **group)  # -m first, as before
    fields = [model, *declared(stage), *rest]
    return settings_options(fields, {**SHARED, **(shared or {})}, config=True)


ENGINE = ("engine", "base_url", "concurrency", "request_timeout", "retries")


def engine_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the generation engine's options (the group's); it receives them as
    `engine=EngineSettings`. Put it under `stage_command` (which then sees these options too)."""
    sig = inspect.signature(func, eval_str=True)
    own = [p for name, p in sig.parameters.items() if name != "engine"]
    added = [option_parameter(GENERATION[name], SHARED) for name in ENGINE]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in ENGINE}
        values["engine"] = values["engine"].value
        return func(*args, engine=GenerationSettings.of(values).engine_settings, **kwargs)

    first = [
        p
        for p in own
        if p.kind is not inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    ]
    rest = [p for p in own if p not in first]
    params = [*first, *[p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in rest], *added]
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # typer must see the new signature, not the original
    return wrapper
