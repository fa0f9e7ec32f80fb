"""The generator seams: what the stages need of an LVLM (models/lvlm.py `Lvlm`) and of a text LLM (`Llm`).

Stages and commands are typed with these protocols, not with the loaded classes, so a fake in a test or
another backend is anything with these methods. `Lvlm` satisfies all three image protocols; `Llm`
satisfies `TextGenerator`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable


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
