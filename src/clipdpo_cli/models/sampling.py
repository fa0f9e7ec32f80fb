"""Batched generation with one random stream per row, shared by the LVLM and LLM wrappers.

transformers' sampling draws every row of a batch from one global RNG, so a row's text depends on the batch it
was in. Here generation runs greedy search through a logits processor that does the sampling itself: each row
has its own torch.Generator (seeded per row), applies temperature and top-p to its logits and draws one token
by inverse CDF, then masks every other token. A row's draws thus depend only on its own seed and its own
logits, not on its batch-mates or on the batch size. (Logits themselves can differ in the last bits between
batch compositions; a draw changes only when it falls within that difference of a token boundary.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.io.records import make_id

SEED_MODULUS = 2**63 - 1


def job_seed(seed: int | None, key: str) -> int | None:
    """A generation job's own seed, derived from the run's --seed and the job's id (None without --seed)."""
    return None if seed is None else int(make_id("seed", seed, key), 16) >> 1


def row_seeds(seed: int | Sequence[int] | None, n: int) -> list[int]:
    """One seed per row: a list is used as is; an int gives seed, seed+1, ...; None draws fresh seeds."""
    if seed is None:
        import torch

        return [int(s) for s in torch.randint(0, 2**62, (n,))]
    if isinstance(seed, int):
        return [(seed + i) % SEED_MODULUS for i in range(n)]
    seeds = [int(s) % SEED_MODULUS for s in seed]
    if len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {n} rows")
    return seeds


def check_sampling(temperature: float, top_p: float, max_new_tokens: int) -> None:
    if temperature < 0:
        raise UsageError(f"--temperature must be >= 0 (0 means greedy), got {temperature}")
    if not 0 < top_p <= 1:
        raise UsageError(f"--top-p must be in (0, 1], got {top_p}")
    if max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")


def make_row_sampler(seeds: list[int], temperature: float, top_p: float) -> Any:
    """A transformers LogitsProcessor that samples each row from its own generator (see module doc)."""
    import torch
    from transformers import LogitsProcessor

    class RowSampler(LogitsProcessor):
        def __init__(self) -> None:
            self.generators = [torch.Generator().manual_seed(s) for s in seeds]

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            rows = scores.shape[0]
            if rows != len(self.generators):
                raise RuntimeError(f"row sampler built for {len(self.generators)} rows, got {rows}")
            logits = scores.float() / temperature
            probs = torch.softmax(logits, dim=-1)
            sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
            cumulative = torch.cumsum(sorted_probs, dim=-1)
            # nucleus: keep the smallest prefix whose mass reaches top_p (always the first token)
            if top_p < 1.0:
                outside = (cumulative - sorted_probs) >= top_p
                sorted_probs = sorted_probs.masked_fill(outside, 0.0)
                cumulative = torch.cumsum(sorted_probs, dim=-1)
            draws = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in self.generators])
            targets = draws.to(cumulative.device) * cumulative[:, -1].double()
            picked = torch.searchsorted(cumulative.double().contiguous(), targets.unsqueeze(-1))
            picked = picked.clamp(max=cumulative.shape[-1] - 1)
            token = order.gather(-1, picked)
            out = torch.full_like(scores, float("-inf"))
            return out.scatter(-1, token, 0.0)

    return RowSampler()


def generation_kwargs(
    model: Any,
    tokenizer: Any,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seeds: list[int],
    stop_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Arguments for model.generate: greedy search, plus the row sampler when temperature > 0.

    `stop_ids` replace the generation config's EOS ids (the end-of-turn token a checkpoint's generation
    config forgets to list would otherwise run generation to the token limit).
    """
    import copy

    from transformers import LogitsProcessorList

    config = copy.deepcopy(model.generation_config)
    config.do_sample = False
    config.temperature = None
    config.top_p = None
    config.top_k = None
    config.num_beams = 1
    config.max_new_tokens = max_new_tokens
    config.max_length = None
    if stop_ids:
        config.eos_token_id = list(stop_ids)
    if config.pad_token_id is None:
        pad = tokenizer.pad_token_id
        config.pad_token_id = pad if pad is not None else config.eos_token_id
    processors = LogitsProcessorList()
    if temperature > 0:
        processors.append(make_row_sampler(seeds, temperature, top_p))
    return {"generation_config": config, "logits_processor": processors}


def generate_texts(
    model: Any,
    tokenizer: Any,
    batch: dict[str, Any],
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int | Sequence[int] | None,
    stop_ids: Sequence[int] | None = None,
) -> list[str]:
    """`model.generate` on a prepared, left-padded batch with per-row seeds; the new text of each row."""
    import torch

    seeds = row_seeds(seed, len(batch["input_ids"]))
    kwargs = generation_kwargs(model, tokenizer, max_new_tokens, temperature, top_p, seeds, stop_ids)
    with torch.inference_mode():
        output = model.generate(**batch, **kwargs)
    return decode_new_tokens(tokenizer, output, batch["input_ids"].shape[1])


def decode_new_tokens(tokenizer: Any, output_ids: Any, prompt_length: int) -> list[str]:
    """The generated continuations (prompt removed, special tokens skipped, whitespace stripped)."""
    texts = tokenizer.batch_decode(output_ids[:, prompt_length:], skip_special_tokens=True)
    return [t.strip() for t in texts]
