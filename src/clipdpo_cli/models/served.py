"""Generation through an OpenAI-compatible server (`--engine openai`): vLLM, SGLang, `transformers serve`.

`ServedLvlm` is an `ImageTextGenerator` and `ServedLlm` a `TextGenerator` (models/generator.py) that send
chat-completions requests with the `openai` client instead of running a model in-process:

- one request per row: the server renders the model's own chat template (the one conversation encoding:
  the image, then the prompt, in one user turn, as models/conversation.py `user_turn`); images go as PNG
  data URLs of the pixels io/images.py decoded (lossless, so the server sees what the in-process engine
  sees), encoded once per image; the rows of one image are sent one after another (adjacent requests), so a
  server with prefix caching (vLLM, SGLang) reuses the image's tokens across its prompts and samples;
- `max_tokens`, `temperature` (0: greedy), `top_p` from the generation options; a row's own seed as the
  request's `seed` (honoured by vLLM, SGLang and `transformers serve`; a sampled text is reproducible on
  the same server and settings, not equal to the in-process engine's, which samples with its own streams);
- generation stops where the server stops: at the end-of-turn / EOS tokens of the model's generation
  config (vLLM and SGLang also at the tokenizer's EOS), which is what the in-process engine stops on when
  the checkpoint's generation_config.json lists its end-of-turn token;
- `--chat-template` goes as the request's `chat_template` field (vLLM and SGLang take it); a server that
  refuses the field (`transformers serve`: 422) stops the run with one line;
- yes/no probabilities from the first token's `top_logprobs` (vLLM, SGLang); a server that returns none
  (`transformers serve` ignores `logprobs`) stops the run with one line pointing to `--yes-no generate`.

Faults: the server is asked for its model list before any work (one line if nothing answers);
connection errors, timeouts, 408/409/429 and 5xx answers are retried by the client with exponential
backoff (`--retries`); a request that still fails with a timeout or an error status is a bad record
(`--on-error`); a server that stops answering altogether (connection refused after the retries) ends the
run with one line, the output cut at a whole record, so `--resume` continues exactly.

Several requests are in flight at once: the stages keep `concurrency` one-row batches running
(stages/batched.py `batching`); a direct call with many rows sends them `concurrency` at a time.
"""

from __future__ import annotations

import base64
import collections
import io
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.io.errors import BadRecord, InputError, UsageError
from clipdpo_cli.models.sampling import check_sampling, row_seeds

DOCS = "docs/generation.md, Serving"
TOP_LOGPROBS = 20  # the most vLLM (--max-logprobs default) and the OpenAI API return
_TEMPLATE_REFUSALS = ("server error 400", "server error 422", "server error 500")  # a template that raised
_SPACE_MARKS = ("", " ", "\u2581", "\u0120")  # a token's text: bare, spaced, sentencepiece, byte-level BPE


@dataclass(frozen=True)
class ServerSettings:
    """Where the server is and how the client talks to it (the `--engine openai` options)."""

    base_url: str
    api_key: str | None = None
    concurrency: int = 16
    timeout: float = 600.0
    retries: int = 4
    chat_template: str | None = None  # the template text, sent with every request


class ServerGone(InputError):
    """The server stopped answering (no connection after the retries): the run stops; --resume continues."""


def base_url(value: str | None) -> str:
    """--base-url, else $OPENAI_BASE_URL; UsageError when neither is set."""
    url = value or os.environ.get("OPENAI_BASE_URL")
    if not url:
        raise UsageError(
            "--engine openai needs --base-url URL (or OPENAI_BASE_URL), e.g. http://127.0.0.1:8000/v1"
        )
    return url.rstrip("/")


def image_url(image: Any) -> str:
    """A PIL image as a PNG data URL (lossless: the server decodes the very pixels io/images.py opened)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _message(exc: Any) -> str:
    """An openai error's text in one line: the server's detail, or the connection error's cause."""
    cause = exc.__cause__ if getattr(exc, "status_code", None) is None else None
    if cause is not None:
        return " ".join(f"{type(cause).__name__}: {cause}".split())[:300]
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("message") or body.get("error") or body
        if isinstance(detail, dict):
            detail = detail.get("message") or detail
        return " ".join(str(detail).split())[:300]
    return " ".join(str(getattr(exc, "message", exc)).split())[:300]


@dataclass
class ServerClient:
    """The `openai` client of one server, with the error policy of the module doc."""

    settings: ServerSettings
    model: str
    client: Any = field(init=False, repr=False)
    _images: collections.OrderedDict[int, tuple[Any, str]] = field(
        default_factory=collections.OrderedDict, init=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        from clipdpo_cli.io.extras import require

        OpenAI = require("openai", "--engine openai").OpenAI  # noqa: N806 (the class)

        s = self.settings
        key = s.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"  # vLLM takes any key unless --api-key
        self.client = OpenAI(base_url=s.base_url, api_key=key, timeout=s.timeout, max_retries=s.retries)

    def check(self) -> None:
        """Ask the server for its models: one line if nothing answers there, before any work."""
        import openai

        try:
            page = self.client.with_options(
                max_retries=1, timeout=min(self.settings.timeout, 30.0)
            ).models.list()
        except openai.APIConnectionError as exc:
            raise InputError(
                f"no OpenAI-compatible server answers at {self.settings.base_url} ({_message(exc)}); "
                f"start one first ({DOCS})"
            ) from None
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403):
                raise InputError(
                    f"the server at {self.settings.base_url} refused the API key ({exc.status_code}); "
                    "set OPENAI_API_KEY"
                ) from None
            raise InputError(
                f"{self.settings.base_url} is not an OpenAI-compatible API (GET /models answered "
                f"{exc.status_code}); the URL usually ends in /v1"
            ) from None
        owners = {getattr(m, "owned_by", None) for m in getattr(page, "data", [])}
        if self.settings.chat_template is not None and "sglang" in owners:  # it ignores the field silently
            raise UsageError(
                "SGLang takes no chat template with a request: start it with --chat-template FILE and leave "
                "--chat-template out here"
            )

    def image(self, image: Any) -> str:
        """The data URL of an image, encoded once while its rows are in flight."""
        key = id(image)
        with self._lock:
            hit = self._images.get(key)
            if hit is not None and hit[0] is image:
                return hit[1]
        url = image_url(image)
        with self._lock:
            self._images[key] = (image, url)  # the image is held, so its id is not reused meanwhile
            while len(self._images) > 4 * max(self.settings.concurrency, 1):
                self._images.popitem(last=False)
        return url

    def chat(self, messages: list[dict[str, Any]], retries: int | None = None, **params: Any) -> Any:
        """One chat completion; errors mapped to BadRecord / ServerGone / InputError / UsageError."""
        import openai

        s = self.settings
        if s.chat_template is not None:
            params["extra_body"] = {"chat_template": s.chat_template}
        client = self.client if retries is None else self.client.with_options(max_retries=retries)
        try:
            return client.chat.completions.create(model=self.model, messages=messages, **params)
        except openai.APITimeoutError:
            raise BadRecord(
                f"the server did not answer within {s.timeout:g} s ({s.retries} retries)", "server timeout"
            ) from None
        except openai.APIConnectionError as exc:
            raise ServerGone(
                f"the server at {s.base_url} stopped answering ({_message(exc)}, {s.retries} retries); "
                "the output ends at a whole record: rerun with --resume to continue"
            ) from None
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None

    def _status_error(self, exc: Any) -> Exception:
        s, status, text = self.settings, exc.status_code, _message(exc)
        if status in (401, 403):
            return InputError(
                f"the server at {s.base_url} refused the API key ({status}: {text}); set OPENAI_API_KEY"
            )
        if status == 404:
            return InputError(f"the server at {s.base_url} has no model '{self.model}' ({status}: {text}); "
                              "-m names the served model")  # fmt: skip
        if s.chat_template is not None and status in (400, 422) and _about_template(text):
            return UsageError(
                f"the server at {s.base_url} does not take --chat-template with a request "
                f"({status}: {text}); "
                "vLLM does when started with --trust-request-chat-template; otherwise start the server with "
                "the template (vllm serve / SGLang --chat-template FILE) and leave --chat-template out here"
            )
        retried = status in (408, 409, 429) or status >= 500
        why = f" after {s.retries} retries" if retried else ""
        return BadRecord(f"the server answered {status}{why}: {text}", f"server error {status}")

    def map_rows(self, function: Callable[[int], Any], n: int) -> list[Any]:
        """function(i) for i < n: in this thread for one row, else `concurrency` at a time, in order."""
        if n <= 1 or self.settings.concurrency <= 1:
            return [function(i) for i in range(n)]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.settings.concurrency, thread_name_prefix="clipdpo-request"
                )
        return list(self._pool.map(function, range(n)))


def _about_template(text: str) -> bool:
    lowered = text.lower()
    return "chat_template" in lowered or "chat template" in lowered


def _sampling(max_new_tokens: int, temperature: float, top_p: float, seed: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {"max_tokens": max_new_tokens, "temperature": temperature}
    if temperature > 0:
        params["top_p"] = top_p
    if seed is not None:
        params["seed"] = seed
    return params


def _text(response: Any) -> str:
    choice = response.choices[0]
    return (choice.message.content or "").strip()


@dataclass
class ServedLvlm:
    """An `ImageTextGenerator` served by an OpenAI-compatible server (see the module doc)."""

    server: ServerClient
    name: str

    @property
    def device(self) -> str:
        return self.server.settings.base_url

    @property
    def concurrency(self) -> int:
        return self.server.settings.concurrency

    def messages(self, image: Any, prompt: str) -> list[dict[str, Any]]:
        """One user turn: the image, then the prompt (the order of models/conversation.py `user_turn`)."""
        content = [{"type": "image_url", "image_url": {"url": self.server.image(image)}},
                   {"type": "text", "text": prompt}]  # fmt: skip
        return [{"role": "user", "content": content}]

    def generate(
        self,
        images: Sequence[Any],
        prompts: Sequence[str],
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | Sequence[int] | None = None,
    ) -> list[str]:
        """One continuation per (image, prompt) row, one request each; a row's seed is its request's."""
        check_sampling(temperature, top_p, max_new_tokens)
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")
        seeds = None if seed is None else row_seeds(seed, len(prompts))

        def one(i: int) -> str:
            params = _sampling(max_new_tokens, temperature, top_p, None if seeds is None else seeds[i])
            return _text(self.server.chat(self.messages(images[i], prompts[i]), **params))

        return self.server.map_rows(one, len(prompts))

    def next_token_probs(
        self, images: Sequence[Any], prompts: Sequence[str], candidates: Sequence[str] = ("Yes", "No")
    ) -> list[dict[str, float]]:
        """Per row, the probability that the answer starts with each candidate, from the first token's
        top_logprobs: a candidate sums its token with and without a leading space (0 outside the top 20)."""
        import math

        def one(i: int) -> dict[str, float]:
            response = self.server.chat(
                self.messages(images[i], prompts[i]), max_tokens=1, temperature=0.0, logprobs=True,
                top_logprobs=TOP_LOGPROBS,
            )  # fmt: skip
            logprobs = getattr(response.choices[0], "logprobs", None)
            content = getattr(logprobs, "content", None) or []
            top = getattr(content[0], "top_logprobs", None) if content else None
            if not top:
                raise UsageError(
                    f"the server at {self.device} returned no logprobs for a yes/no query (vLLM and SGLang "
                    "do, transformers serve does not): use --yes-no generate"
                )
            out = dict.fromkeys(candidates, 0.0)
            for entry in top:
                for c in candidates:
                    if entry.token in {mark + c for mark in _SPACE_MARKS}:
                        out[c] += math.exp(entry.logprob)
            return out

        return self.server.map_rows(one, len(prompts))


@dataclass
class ServedLlm:
    """A `TextGenerator` served by an OpenAI-compatible server (ask, perturb --method llm).

    A system prompt goes as a system turn; a template that refuses one (Mistral-Instruct's, Gemma's: the
    server answers the first request with an error) gets it at the top of the user turn instead, as
    models/llm.py `Llm.chat_text` does, for the rest of the run.
    """

    server: ServerClient
    name: str
    _system_turn: bool | None = field(default=None, repr=False)
    _probe: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def concurrency(self) -> int:
        return self.server.settings.concurrency

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | Sequence[int] | None = None,
        system: str | None = None,
    ) -> list[str]:
        """One answer per prompt, one request each; `seed` as in ServedLvlm.generate."""
        check_sampling(temperature, top_p, max_new_tokens)
        seeds = None if seed is None else row_seeds(seed, len(prompts))

        def one(i: int) -> str:
            params = _sampling(max_new_tokens, temperature, top_p, None if seeds is None else seeds[i])
            return _text(self._chat(prompts[i], system, params))

        return self.server.map_rows(one, len(prompts))

    def _chat(self, prompt: str, system: str | None, params: dict[str, Any]) -> Any:
        merged = [{"role": "user", "content": f"{system}\n\n{prompt}" if system else prompt}]
        if not system or self._system_turn is False:
            return self.server.chat(merged, **params)
        turns = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        if self._system_turn:
            return self.server.chat(turns, **params)
        with self._probe:  # the first request finds out whether the template takes a system turn
            if self._system_turn is None:
                try:
                    response = self.server.chat(turns, retries=0, **params)
                except BadRecord as exc:
                    if exc.reason not in _TEMPLATE_REFUSALS:  # not the template: retried as any request
                        return self.server.chat(turns, **params)
                    response = self.server.chat(merged, **params)
                    self._system_turn = False
                    return response
                self._system_turn = True
                return response
        return self._chat(prompt, system, params)


def connect(model: str, settings: ServerSettings) -> ServerClient:
    """A checked client of the server (InputError in one line when nothing answers there)."""
    server = ServerClient(settings, model)
    server.check()
    return server
