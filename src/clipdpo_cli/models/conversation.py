"""The one conversation encoding: (image, prompt) and (image, prompt, completion) -> model inputs.

Every model pass goes through `ChatEncoding`: `caption`, `ask`-style generation of the LVLM, `eval-amber`,
`eval-zeroshot`, the reference log-prob pass and DPO / KTO training. Its invariants, for every model family:

- The prompt ids of a training row are the ids generation feeds the model: the processor's chat template
  with the generation prompt, tokenised with the tokenizer's special tokens unless the rendered text already
  starts with BOS (the rule transformers' own `apply_chat_template(tokenize=True)` follows). LLaVA-1.5's
  template writes no `<s>`, so the tokenizer adds it; ChatML templates get none.
- A completion's ids are the tokens the model would generate for that text right after the generation
  prompt, then the model's end-of-turn token (the one generation stops on). The text is tokenised in
  context, as the template writes the assistant's turn (LLaVA's "ASSISTANT: text", SmolVLM's "Assistant:
  text"), so its first token carries the space the model emits; whatever the template writes after the
  text (LLaVA-1.5's trailing space, ChatML's "\\n" after `<|im_end|>`) is never generated and is not part
  of the completion.
- The end-of-turn token is the first special token the template writes after an assistant's text
  (`<|im_end|>`, `<end_of_utterance>`, `<end_of_turn>`, `<|eot_id|>`, `</s>`), else the tokenizer's EOS;
  generation stops on it as well as on the generation config's EOS ids.

TRL stays the trainer: `preference_batch` and `unpaired_batch` return the tensors its vision collators
return (input_ids, attention_mask, completion_mask, pixel values and the processor's other image keys,
token-type ids; KTO's KL_* rows), built from these ids instead of from TRL's own tokenisation (which drops
LLaVA-1.5's BOS and `</s>`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.io.errors import InputError

MARKER = "Xq7 marker"  # a text no template contains, to find where the assistant's text sits
# Per-token keys that follow input_ids, and the value a completion (generated) position gets in each.
# PaliGemma marks the prefix 0 (bidirectional attention) and generated tokens 1.
TOKEN_KEYS = ("token_type_ids", "mm_token_type_ids")
COMPLETION_TOKEN_TYPE = {"PaliGemmaProcessor": 1}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__


def template_failure(exc: Exception) -> InputError:
    """One line for a chat template that does not compile or render (a syntax error, an unsafe access
    the sandbox refuses, a raise_exception of its own)."""
    where = f" at line {exc.lineno}" if getattr(exc, "lineno", None) else ""
    return InputError(
        f"the chat template cannot be used ({type(exc).__name__}{where}: {_first_line(exc)}): fix it, or "
        "pass one written for this model with --chat-template FILE"
    )


def user_turn(prompt: str) -> list[dict[str, Any]]:
    """A one-turn conversation: the image, then the prompt (the order LLaVA and Qwen2-VL were trained on)."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def assistant_turn(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def text_of(content: Any) -> Any:
    """Content parts as text LLM templates want them: the string of their texts."""
    if isinstance(content, list):
        return "".join(part["text"] for part in content if part.get("type") == "text")
    return content


@dataclass
class ChatEncoding:
    """Encodes conversations for one processor (an LVLM's AutoProcessor) or a text LLM's tokenizer."""

    processor: Any
    _eot: int | None = field(default=None, repr=False)
    _prompts: dict[str, tuple[str, list[int]]] = field(default_factory=dict, repr=False)  # text, ids

    @property
    def tokenizer(self) -> Any:
        """The processor's tokenizer, or the processor itself when it is a text LLM's tokenizer."""
        return getattr(self.processor, "tokenizer", self.processor)

    # ---- text ------------------------------------------------------------------------------------------

    def render(self, messages: list[dict[str, Any]], generation_prompt: bool) -> str:
        """The conversation as the chat template writes it; InputError for a template that fails."""
        from jinja2 import TemplateError

        if self.tokenizer is self.processor:  # a text LLM: its template concatenates content as a string
            messages = [{**m, "content": text_of(m["content"])} for m in messages]
        try:
            return self.processor.apply_chat_template(
                messages, add_generation_prompt=generation_prompt, tokenize=False
            )
        except TemplateError as exc:
            raise template_failure(exc) from None

    def prompt_text(self, prompt: str) -> str:
        """The generation prompt as text (image placeholders not yet expanded)."""
        return self._prompt(prompt)[0]

    def _prompt(self, prompt: str) -> tuple[str, list[int]]:
        """(generation prompt text, its ids without special tokens), rendered once per distinct prompt."""
        if prompt not in self._prompts:
            text = self.render(user_turn(prompt), generation_prompt=True)
            self._prompts[prompt] = (text, self.text_ids(text))
        return self._prompts[prompt]

    def add_special_tokens(self, text: str) -> bool:
        """Whether the tokenizer adds its special tokens (BOS): not when the template already wrote BOS."""
        bos = self.tokenizer.bos_token
        return not (bos and text.startswith(bos))

    def text_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def assistant_text(self, prompt: str, text: str) -> tuple[str, str, str]:
        """(generation prompt, what the template writes after it up to the end of `text`, what follows).

        The middle part is `text` with the template's own lead ("ASSISTANT: " minus what the generation
        prompt already has). A template that does not write the assistant's text gives ('', text, '')
        and the text is tokenised on its own.
        """
        head = self.prompt_text(prompt)
        full = self.render(user_turn(prompt) + assistant_turn(text), generation_prompt=False)
        end = full.rfind(text)
        if end < 0 or not full.startswith(head) or end < len(head):
            return "", text, ""
        return head, full[len(head) : end + len(text)], full[end + len(text) :]

    def completion_ids(self, prompt: str, text: str) -> list[int]:
        """The ids the model would generate for `text` after the prompt, then the end-of-turn token."""
        text = text.strip()
        head, lead, _ = self.assistant_text(prompt, text)
        before = self._prompt(prompt)[1] if head else []
        joint = self.text_ids(head + lead)
        # if the boundary merged into one token (or the template writes no assistant text): the text alone
        in_context = bool(head) and joint[: len(before)] == before
        ids = joint[len(before) :] if in_context else self.text_ids(lead)
        return ids + [self.end_of_turn_id]

    @property
    def end_of_turn_id(self) -> int:
        """The token an assistant turn ends with (see the module doc)."""
        if self._eot is None:
            self._eot = self._find_end_of_turn()
        return self._eot

    def _find_end_of_turn(self) -> int:
        tok = self.tokenizer
        _, _, tail = self.assistant_text("Describe.", MARKER)
        special = set(tok.all_special_ids) | {
            i for i, t in tok.added_tokens_decoder.items() if getattr(t, "special", False)
        }
        for token_id in self.text_ids(tail):
            if token_id in special:
                return int(token_id)
            if tok.decode([token_id]).strip():
                break
        if tok.eos_token_id is None:
            raise ValueError("the template ends an assistant turn with no special token and there is no EOS")
        return int(tok.eos_token_id)

    def stop_token_ids(self, generation_config: Any) -> list[int]:
        """What generation stops on: the generation config's EOS ids plus the end-of-turn token."""
        eos = getattr(generation_config, "eos_token_id", None)
        ids = [eos] if isinstance(eos, int) else list(eos or [])
        if self.end_of_turn_id not in ids:
            ids.append(self.end_of_turn_id)
        return ids

    # ---- tensors ---------------------------------------------------------------------------------------

    def prompt_batch(self, images: Sequence[Any], prompts: Sequence[str], padding_side: str = "left") -> Any:
        """Processor outputs (ids, mask, pixels, ...) of the generation prompts, one image per row."""
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")
        texts = [self.prompt_text(p) for p in prompts]
        try:
            return self.processor(
                images=[[image] for image in images],
                text=texts,
                padding=True,
                padding_side=padding_side,
                return_tensors="pt",
                add_special_tokens=self.add_special_tokens(texts[0]),
            )
        except ValueError as exc:  # e.g. "Found total 0 <IMG_CONTEXT> tokens and 15 images"
            token = getattr(self.processor, "image_token", None)
            wants = f" (it expects {token} where the image goes)" if isinstance(token, str) else ""
            raise InputError(
                f"the model's processor refuses the prompt its chat template writes{wants}: "
                f"{_first_line(exc)}; pass a template written for this model with --chat-template FILE"
            ) from None

    @property
    def image_token_id(self) -> int | None:
        token_id = getattr(self.processor, "image_token_id", None)
        if token_id is None:
            token = getattr(self.processor, "image_token", None)
            token_id = self.tokenizer.convert_tokens_to_ids(token) if token else None
        return token_id

    def join(self, prompts: Any, completions: Sequence[list[int]], max_text: int | None = None) -> dict:
        """Prompt batch + completion ids -> TRL's batch (input_ids, attention_mask, completion_mask, ...).

        Rows are flushed left (no padding before the prompt). `max_text` cuts each row to that many text
        tokens plus its own image tokens, from the end of the completion; the prompt is never cut.
        """
        import torch
        from trl.trainer.utils import flush_left, pad

        pad_id = self.tokenizer.pad_token_id
        pad_id = self.tokenizer.eos_token_id if pad_id is None else pad_id
        comp = pad([torch.tensor(c, dtype=torch.long) for c in completions], padding_value=pad_id)
        comp_mask = pad([torch.ones(len(c), dtype=torch.long) for c in completions], padding_value=0)
        prompt_ids, prompt_mask = prompts["input_ids"], prompts["attention_mask"]
        input_ids = torch.cat((prompt_ids, comp), dim=1)
        attention_mask = torch.cat((prompt_mask, comp_mask), dim=1)
        completion_mask = torch.cat((torch.zeros_like(prompt_mask), comp_mask), dim=1)
        keys = [k for k in TOKEN_KEYS if k in prompts]
        fill = COMPLETION_TOKEN_TYPE.get(type(self.processor).__name__, 0)
        extra = [
            torch.cat((prompts[k], comp_mask * (fill if k == "token_type_ids" else 0)), dim=1) for k in keys
        ]
        attention_mask, input_ids, completion_mask, *extra = flush_left(
            attention_mask, input_ids, completion_mask, *extra
        )
        if max_text is not None:
            keep = self.row_limits(input_ids, attention_mask, completion_mask, max_text)
            positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
            cut = positions >= keep.unsqueeze(1)
            attention_mask = attention_mask.masked_fill(cut, 0)
            completion_mask = completion_mask.masked_fill(cut, 0)
            input_ids = input_ids.masked_fill(cut, pad_id)
            width = int(attention_mask.sum(dim=1).max())
            input_ids, attention_mask, completion_mask = (
                t[:, :width] for t in (input_ids, attention_mask, completion_mask)
            )
            extra = [t.masked_fill(cut, 0)[:, :width] for t in extra]
        out = {k: v for k, v in prompts.items() if k != "labels"}  # PaliGemma's processor adds labels
        out.update(input_ids=input_ids, attention_mask=attention_mask, completion_mask=completion_mask)
        out.update(zip(keys, extra, strict=True))
        return out

    def row_limits(self, input_ids: Any, attention_mask: Any, completion_mask: Any, max_text: int) -> Any:
        """Per row: max_text + the row's image tokens, never less than the row's prompt."""
        image_id = self.image_token_id
        images = (input_ids == image_id).sum(dim=1) if image_id is not None else 0
        prompt_len = (attention_mask.bool() & ~completion_mask.bool()).sum(dim=1)
        return (images + max_text).clamp(min=prompt_len)

    def preference_batch(
        self,
        images: Sequence[Any],
        prompts: Sequence[str],
        chosen: Sequence[str],
        rejected: Sequence[str],
        max_text: int | None = None,
    ) -> dict:
        """A DPO batch: rows [chosen_1..chosen_n, rejected_1..rejected_n], as TRL's vision collator."""
        batch = self.prompt_batch(list(images) * 2, list(prompts) * 2)
        texts = [*chosen, *rejected]
        completions = [self.completion_ids(p, t) for p, t in zip(list(prompts) * 2, texts, strict=True)]
        return self.join(batch, completions, max_text)

    def unpaired_batch(
        self,
        images: Sequence[Any],
        prompts: Sequence[str],
        completions: Sequence[str],
        calculate_kl: bool = True,
        max_text: int | None = None,
    ) -> dict:
        """A KTO batch (TRL's keys); the KL rows pair each prompt with the previous row's completion."""
        batch = self.prompt_batch(images, prompts)
        ids = [self.completion_ids(p, t) for p, t in zip(prompts, completions, strict=True)]
        out = self.join(batch, ids, max_text)
        if calculate_kl:
            kl = self.join(batch, ids[-1:] + ids[:-1], max_text)
            for key in ("input_ids", "attention_mask", "completion_mask", *TOKEN_KEYS):
                if key in kl:
                    out[f"KL_{key}"] = kl[key]
        return out

    def split_rows(self, batch: dict, row: int) -> tuple[list[int], list[int]]:
        """(prompt ids, completion ids) of one row of a joined batch, padding removed."""
        ids = batch["input_ids"][row]
        live = batch["attention_mask"][row].bool()
        comp = batch["completion_mask"][row].bool()
        return ids[live & ~comp].tolist(), ids[comp].tolist()
