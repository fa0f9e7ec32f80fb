"""Loading a text LLM (AutoModelForCausalLM + AutoTokenizer) and generating from chat prompts in batches.

>>> llm = load_llm("teknium/OpenHermes-2.5-Mistral-7B", device="cuda", dtype="bf16")   # doctest: +SKIP
>>> llm.generate(["Two questions about: a dog on a lawn."], seed=[7])   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.models.conversation import ChatEncoding, template_failure
from clipdpo_cli.models.hub import (
    load_frozen,
    load_pretrained,
    model_dtype,
    pad_left,
    resolve_name,
    use_chat_template,
)
from clipdpo_cli.models.sampling import check_sampling, generate_texts


@dataclass
class Llm:
    """A loaded chat LLM: the transformers model, its tokenizer, and the name it was loaded by."""

    model: Any
    tokenizer: Any
    name: str
    _encoding: ChatEncoding | None = field(default=None, repr=False)

    @property
    def device(self) -> Any:
        return self.model.device

    @property
    def encoding(self) -> ChatEncoding:
        """The project's conversation encoding for this tokenizer (BOS rule, end-of-turn token)."""
        if self._encoding is None:
            self._encoding = ChatEncoding(self.tokenizer)
        return self._encoding

    @property
    def stop_ids(self) -> list[int]:
        """What generation stops on: the generation config's EOS ids and the template's end-of-turn token."""
        return self.encoding.stop_token_ids(self.model.generation_config)

    def chat_text(self, prompt: str, system: str | None = None) -> str:
        """The prompt rendered by the tokenizer's chat template, ready for the assistant's answer.

        A template that refuses a system turn (e.g. Mistral-Instruct's, Gemma's) gets the system text at the
        top of the user turn instead.
        """
        from jinja2 import TemplateError

        def render(messages: list[dict[str, str]]) -> str:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

        user = {"role": "user", "content": prompt}
        if system:
            try:
                return render([{"role": "system", "content": system}, user])
            except TemplateError:
                user = {"role": "user", "content": f"{system}\n\n{prompt}"}
        try:
            return render([user])
        except TemplateError as exc:
            raise template_failure(exc) from None

    def inputs(self, prompts: Sequence[str], system: str | None = None) -> dict[str, Any]:
        """Chat-templated, left-padded inputs on the model's device."""
        texts = [self.chat_text(p, system) for p in prompts]
        # a template that writes BOS itself must not get a second one from the tokenizer
        add_special = self.encoding.add_special_tokens(texts[0])
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=add_special)
        return {k: v.to(self.device) for k, v in batch.items()}

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | Sequence[int] | None = None,
        system: str | None = None,
    ) -> list[str]:
        """One answer per prompt (batched); `seed` as in Lvlm.generate (a list: one seed per row)."""
        check_sampling(temperature, top_p, max_new_tokens)
        if not prompts:
            return []
        batch = self.inputs(prompts, system)
        return generate_texts(
            self.model, self.tokenizer, batch, max_new_tokens, temperature, top_p, seed, self.stop_ids
        )


def check_causal_lm(name: str, path: str) -> None:
    """InputError naming the fix when the model is not a text causal LM (e.g. an LVLM given to `ask`)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    )

    from clipdpo_cli.io.errors import InputError

    model_type = getattr(load_pretrained(AutoConfig.from_pretrained, path, "model"), "model_type", None)
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or model_type is None:
        return
    hint = "; it is an image-text model: use it with caption" if (
        model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    ) else ""
    raise InputError(f"model '{name}' ({model_type}) is not a text causal language model{hint}")


def load_llm(
    name_or_dir: str, device: str | Any = "auto", dtype: str = "auto", chat_template: str | None = None
) -> Llm:
    """Load a causal LM by Hub id or local directory; InputError (one line) if missing or template-less."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from clipdpo_cli.models.device import resolve_device

    path = resolve_name(name_or_dir, "model")
    torch_device = resolve_device(device) if isinstance(device, str) else device
    torch_dtype = model_dtype(dtype, torch_device)
    check_causal_lm(name_or_dir, path)
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, path, "model")
    use_chat_template(tokenizer, name_or_dir, chat_template)
    pad_left(tokenizer)
    model = load_frozen(AutoModelForCausalLM.from_pretrained, path, "model", torch_dtype, torch_device)
    return Llm(model=model, tokenizer=tokenizer, name=name_or_dir)
