"""Options shared by the model-backed generation commands (caption, ask, respond, perturb, eval-amber,
eval-zeroshot), declared once; `engine_options` adds the generation engine's group to a command."""

import enum
import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from clipdpo_cli.models.device import HELP, Precision, Use

Dtype = Precision  # the one precision enum (models/device.py); --dtype is its Use.weights

DtypeOpt = Annotated[Dtype, typer.Option(help=HELP[Use.weights])]
BatchSizeOpt = Annotated[int, typer.Option(min=1, help="Rows (prompts) generated together in one batch.")]
TemperatureOpt = Annotated[float, typer.Option(min=0.0, help="Sampling temperature; 0 = greedy.")]
TopPOpt = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Nucleus sampling: keep the top tokens of this mass.")
]
MaxNewTokensOpt = Annotated[int, typer.Option(min=1, help="Longest generated text, in tokens.")]
SeedOpt = Annotated[
    int | None,
    typer.Option(help="Each output is sampled from its own stream seeded by this and its id (reproducible)."),
]
ChatTemplateOpt = Annotated[
    str | None,
    typer.Option(
        help="Jinja chat template, its text or a file, for a model that has none (or to replace its own).",
        show_default=False,
    ),
]

MaxPixelsOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Cap on one image's pixels for dynamic-resolution processors (Qwen2-VL max_pixels, SmolVLM "
        "resize edge); fixed-resolution models ignore it.",
        show_default=False,
    ),
]


class Engine(str, enum.Enum):
    hf = "hf"
    openai = "openai"


_ENGINE_PARAMS: list[tuple[str, Any, Any]] = [
    (
        "engine",
        Annotated[
            Engine,
            typer.Option(
                help="hf: generate in-process with transformers; openai: send requests to an "
                "OpenAI-compatible server (vLLM, SGLang, transformers serve) at --base-url, -m naming the "
                "served model.",
            ),
        ],
        Engine.hf,
    ),
    (
        "base_url",
        Annotated[
            str | None,
            typer.Option(
                help="--engine openai: the server's API URL (e.g. http://127.0.0.1:8000/v1); default: "
                "$OPENAI_BASE_URL. The API key, if the server wants one: $OPENAI_API_KEY.",
                show_default=False,
            ),
        ],
        None,
    ),
    (
        "concurrency",
        Annotated[int, typer.Option(min=1, help="--engine openai: requests in flight at once.")],
        16,
    ),
    (
        "request_timeout",
        Annotated[
            float,
            typer.Option(min=1, metavar="SECONDS", help="--engine openai: the longest wait for one answer."),
        ],
        600.0,
    ),
    (
        "retries",
        Annotated[
            int,
            typer.Option(
                min=0,
                help="--engine openai: retries of a request (timeout, 408/429/5xx, no connection), with "
                "exponential backoff; then the record is bad (--on-error), or the run stops if the server "
                "is gone.",
            ),
        ],
        4,
    ),
]


def engine_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the generation engine's options; it receives them as `engine=EngineSettings`.

    Put it under `stage_command` (which then sees these options too).
    """
    from clipdpo_cli.models.generator import EngineSettings

    sig = inspect.signature(func, eval_str=True)
    own = [p for name, p in sig.parameters.items() if name != "engine"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default)
        for name, ann, default in _ENGINE_PARAMS
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        engine = EngineSettings(
            engine=kwargs.pop("engine").value,
            base_url=kwargs.pop("base_url"),
            concurrency=kwargs.pop("concurrency"),
            timeout=kwargs.pop("request_timeout"),
            retries=kwargs.pop("retries"),
        )
        return func(*args, engine=engine, **kwargs)

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
