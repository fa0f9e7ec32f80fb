"""The generator seams: what the stages need of an LVLM (models/lvlm.py `Lvlm`) and of a text LLM (`Llm`).

Stages and commands are typed with these protocols, not with the loaded classes, so a fake in a test or
another backend is anything with these methods. `Lvlm` satisfies all three image protocols; `Llm`
satisfies `TextGenerator`. The engines behind them (`--engine`): `hf`, in-process transformers
(models/lvlm.py, models/llm.py), and `openai`, any OpenAI-compatible server (models/served.py
`ServedLvlm`, `ServedLlm`: vLLM, SGLang, `transformers serve`); `open_image_text_generator` and
`open_text_generator` pick one from `EngineSettings`. A generator may also declare `concurrency`, the
requests it takes at once (stages/batched.py `batching`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

ENGINES = ("hf", "openai")


@dataclass(frozen=True)
class EngineSettings:
    """Which engine generates (`--engine`), and for `openai`, the server and the client's window."""

    engine: str = "hf"  # hf: in-process transformers; openai: an OpenAI-compatible server
    base_url: str | None = None  # default $OPENAI_BASE_URL
    concurrency: int = 16  # requests in flight
    timeout: float = 600.0  # seconds per request
    retries: int = 4  # retries of a request (connection errors, timeouts, 408/409/429/5xx)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {self.engine!r}")

    @property
    def served(self) -> bool:
        return self.engine == "openai"

    def server(self, chat_template: str | None) -> Any:
        """The served engine's models.served.ServerSettings (the URL resolved, the template text)."""
        from clipdpo_cli.models.served import ServerSettings, base_url

        return ServerSettings(
            base_url=base_url(self.base_url), concurrency=self.concurrency, timeout=self.timeout,
            retries=self.retries, chat_template=chat_template,
        )  # fmt: skip


@runtime_checkable
class ImageTextGenerator(Protocol):
    """Generates from (image, prompt) rows and gives the next token's probabilities (yes/no questions)."""

    name: str

    @property
    def device(self) -> Any: ...

    def generate(
        self,
        images: Sequence[Any],
        prompts: Sequence[str],
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | Sequence[int] | None = None,
    ) -> list[str]:
        """One continuation per (image, prompt) row; temperature 0 is greedy; a list of seeds, one per row."""
        ...

    def next_token_probs(
        self, images: Sequence[Any], prompts: Sequence[str], candidates: Sequence[str] = ("Yes", "No")
    ) -> list[dict[str, float]]:
        """Per row, the probability that the answer starts with each candidate (not renormalised)."""
        ...


@runtime_checkable
class LikelihoodScorer(Protocol):
    """The log-likelihood of a text given an image and a prompt (score --scorer lvlm)."""

    name: str

    def text_logprobs(
        self, images: Sequence[Any], prompts: Sequence[str], texts: Sequence[str]
    ) -> list[tuple[float, int]]:
        """Per row: (sum of log p(token), number of tokens) of the text."""
        ...


@runtime_checkable
class TextGenerator(Protocol):
    """Generates from chat prompts without images (ask's questions, perturb's LLM rewrites)."""

    name: str

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | Sequence[int] | None = None,
        system: str | None = None,
    ) -> list[str]:
        """One answer per prompt (batched); `seed` as in ImageTextGenerator.generate."""
        ...


def _served_only(max_pixels: int | None) -> None:
    from clipdpo_cli.io.errors import UsageError

    if max_pixels is not None:
        raise UsageError(
            "--max-pixels is the in-process engine's; with --engine openai the server's processor decides "
            "(vLLM: --mm-processor-kwargs)"
        )


def open_image_text_generator(
    model: str,
    engine: EngineSettings | None = None,
    device: str = "auto",
    dtype: str = "auto",
    chat_template: str | None = None,
    max_pixels: int | None = None,
) -> ImageTextGenerator:
    """The LVLM of caption / respond: loaded in-process (hf) or a client of a server (openai).

    `chat_template` is a file or the template text (models.hub.read_chat_template); `device`, `dtype` and
    `max_pixels` are the in-process engine's.
    """
    engine = engine or EngineSettings()
    if engine.served:
        from clipdpo_cli.models.hub import read_chat_template
        from clipdpo_cli.models.served import ServedLvlm, connect

        _served_only(max_pixels)
        return ServedLvlm(connect(model, engine.server(read_chat_template(chat_template))), name=model)
    from clipdpo_cli.models.lvlm import load_lvlm

    return load_lvlm(model, device=device, dtype=dtype, chat_template=chat_template, max_pixels=max_pixels)


def open_text_generator(
    model: str,
    engine: EngineSettings | None = None,
    device: str = "auto",
    dtype: str = "auto",
    chat_template: str | None = None,
) -> TextGenerator:
    """The chat LLM of ask / perturb: loaded in-process (hf) or a client of a server (openai).

    `chat_template` is a file or the template text (models.hub.read_chat_template reads it).
    """
    engine = engine or EngineSettings()
    if engine.served:
        from clipdpo_cli.models.hub import read_chat_template
        from clipdpo_cli.models.served import ServedLlm, connect

        return ServedLlm(connect(model, engine.server(read_chat_template(chat_template))), name=model)
    from clipdpo_cli.models.llm import load_llm

    return load_llm(model, device=device, dtype=dtype, chat_template=chat_template)
