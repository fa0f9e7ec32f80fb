"""The generation options, one group declared once: the model, sampling, loading and engine options of every
command that generates (caption, ask, respond, perturb; the benchmarks' generation pass).

`GenerationSettings` holds them as `io.setting.setting` fields (the field and its help together); a command
includes the group with `generation_options(StageSettings, ...)` (its fields, for
commands/settings_options.py) and rebuilds it from the parsed options with `GenerationSettings.of(values)`,
which also opens the generator. The group's flags, help texts and bounds are the same in every command; a
command's defaults may differ, and come from one place each:

1. a keyword given to `generation_options` (`model=`, `model_help=`: the model differs per command);
2. else the default of the stage's own dataclass field of that name (RespondSettings.temperature = 0.0 is
   respond's --temperature default: the Python API and the command line cannot drift apart);
3. else the group's default below.

A field the stage declares itself with `setting(...)` (caption's --batch-size auto, perturb's --seed, whose
rules meaning differs) replaces the group's. No typer here: the typer side is commands/generation.py.
"""

import copy
import dataclasses
import enum
import hashlib
import types
from collections.abc import Mapping
from dataclasses import MISSING, dataclass
from functools import cached_property
from typing import Any

from clipdpo_cli.io.setting import declared, setting
from clipdpo_cli.models.device import HELP, Precision, Use
from clipdpo_cli.models.generator import EngineSettings, ImageTextGenerator, TextGenerator


class Engine(str, enum.Enum):
    hf = "hf"
    openai = "openai"


def _value(choice: Any) -> Any:
    """An enum option's value ('auto' for Precision.auto); a plain value (from Python) as it is."""
    return getattr(choice, "value", choice)


LVLM_HELP = (
    "LVLM: Hugging Face id or local directory (image-text-to-text); --engine openai: the served model's name."
)
LLM_HELP = (
    "Chat LLM: Hugging Face id or local directory (causal LM); --engine openai: the served model's name."
)
CHAT_TEMPLATE_HELP = (
    "Jinja chat template, as a file or as the template text itself, for a model that has none (or to "
    "replace its own)."
)
MAX_PIXELS_HELP = (
    "Cap on one image's pixels for dynamic-resolution processors (Qwen2-VL max_pixels, SmolVLM resize "
    "edge); fixed-resolution models ignore it."
)


@dataclass(frozen=True)
class GenerationSettings:
    """Which model generates, how it samples, how it is loaded, and by which engine (`--engine`)."""

    model: str | None = setting(None, LVLM_HELP, flags=("--model", "-m"))
    temperature: float = setting(0.7, "Sampling temperature; 0 = greedy.", min=0.0)
    top_p: float = setting(0.95, "Nucleus sampling: keep the top tokens of this mass.", min=0.0, max=1.0)
    max_new_tokens: int = setting(256, "Longest generated text, in tokens.", min=1)
    seed: int | None = setting(
        None, "Each output is sampled from its own stream seeded by this and its id (reproducible)."
    )
    batch_size: int = setting(8, "Rows (prompts) generated together in one batch.", min=1)
    device: str = setting("auto", shared=True)  # commands/options.py DeviceOpt (checked when parsed)
    dtype: str = setting(
        "auto", HELP[Use.weights], cli_type=Precision, cli_default=Precision.auto, parse=_value
    )
    chat_template: str | None = setting(None, CHAT_TEMPLATE_HELP, show_default=False)
    max_pixels: int | None = setting(None, MAX_PIXELS_HELP, min=1, show_default=False)
    engine: str = setting(
        "hf",
        "hf: generate in-process with transformers; openai: send requests to an OpenAI-compatible server "
        "(vLLM, SGLang, transformers serve) at --base-url, -m naming the served model.",
        cli_type=Engine, cli_default=Engine.hf, parse=_value,
    )  # fmt: skip
    base_url: str | None = setting(
        None,
        "--engine openai: the server's API URL (e.g. http://127.0.0.1:8000/v1); default: $OPENAI_BASE_URL. "
        "The API key, if the server wants one: $OPENAI_API_KEY.",
        show_default=False,
    )
    concurrency: int = setting(16, "--engine openai: requests in flight at once.", min=1)
    request_timeout: float = setting(
        600.0, "--engine openai: the longest wait for one answer.", min=1, metavar="SECONDS"
    )
    retries: int = setting(
        4,
        "--engine openai: retries of a request (timeout, 408/429/5xx, no connection), with exponential "
        "backoff; then the record is bad (--on-error), or the run stops if the server is gone.",
        min=0,
    )

    def __post_init__(self) -> None:
        from clipdpo_cli.models.sampling import check_sampling

        check_sampling(self.temperature, self.top_p, self.max_new_tokens)  # before any model loads
        if self.base_url and self.engine == "hf":  # a server named, but the model would run in-process
            from clipdpo_cli.io.errors import UsageError

            raise UsageError(
                f"--base-url {self.base_url} is for --engine openai (a server); with --engine hf the model "
                "runs in-process: add --engine openai, or drop --base-url"
            )

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> "GenerationSettings":
        """The group from a command's parsed options (the names it has; the rest keep their defaults)."""
        return cls(**pick(cls, values))

    @property
    def engine_settings(self) -> EngineSettings:
        return EngineSettings(
            engine=self.engine, base_url=self.base_url, concurrency=self.concurrency,
            timeout=self.request_timeout, retries=self.retries,
        )  # fmt: skip

    @cached_property
    def template(self) -> str | None:
        """--chat-template's text (read from its file once), or None."""
        from clipdpo_cli.models.hub import read_chat_template

        return read_chat_template(self.chat_template)

    @property
    def template_digest(self) -> str | None:
        """A short hash of the chat template given, recorded with outputs it shaped (caption)."""
        return hashlib.sha256(self.template.encode()).hexdigest()[:16] if self.template else None

    def open_image_text(self) -> ImageTextGenerator:
        """The LVLM (caption, respond): in-process or a server's client, per --engine."""
        from clipdpo_cli.models.generator import open_image_text_generator

        assert self.model is not None
        return open_image_text_generator(
            self.model, self.engine_settings, self.device, self.dtype, self.template, self.max_pixels
        )

    def open_text(self) -> TextGenerator:
        """The chat LLM (ask, perturb --method llm): in-process or a server's client, per --engine."""
        from clipdpo_cli.models.generator import open_text_generator

        assert self.model is not None
        engine, template = self.engine_settings, self.chat_template  # a file or the text: it reads it
        return open_text_generator(self.model, engine, self.device, self.dtype, template)


def pick(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `values` that are fields of dataclass `cls` (to build it from a command's options)."""
    return {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}


def with_default(f: dataclasses.Field[Any], default: Any, **metadata: Any) -> dataclasses.Field[Any]:
    """A copy of a declared field with another default (MISSING: a required option) and, optionally, other
    metadata (help=...): how a command's own default joins a group declared once."""
    new = copy.copy(f)
    new.default, new.default_factory = default, MISSING
    new.metadata = types.MappingProxyType({**f.metadata, **metadata})
    return new


def generation_options(
    stage: type | None = None,
    *,
    without: tuple[str, ...] = (),
    model: Any = None,
    model_help: str = LVLM_HELP,
) -> list[dataclasses.Field[Any]]:
    """The group's fields for a command (the module docstring says where each default comes from).

    `stage`: the stage's settings dataclass; its own option fields replace the group's of the same name.
    `without`: group options the command does not take (max_pixels for a text LLM). `model`, `model_help`:
    the command's --model default (MISSING: required) and help.
    """
    own = {f.name for f in declared(stage)} if stage is not None else set()
    stage_fields = {f.name: f for f in dataclasses.fields(stage)} if stage is not None else {}
    fields = []
    for f in declared(GenerationSettings):
        if f.name in own or f.name in without:
            continue
        if f.name == "model":
            f = with_default(f, model, help=model_help)
        elif f.name in stage_fields and stage_fields[f.name].default is not MISSING:
            f = with_default(f, stage_fields[f.name].default)
        fields.append(f)
    return fields
