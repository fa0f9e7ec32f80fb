"""The per-row sampler: the distribution it draws from, top-p truncation, and per-row determinism."""

from __future__ import annotations

import pytest
import torch

from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.models.sampling import check_sampling, make_row_sampler, row_seeds

PROBS = [0.5, 0.3, 0.15, 0.05]


def draw(n: int, temperature: float, top_p: float, first_seed: int = 0) -> torch.Tensor:
    """Token picked in each of n rows whose logits are log(PROBS) (shuffled order, to test the sort)."""
    order = [2, 0, 3, 1]
    logits = torch.log(torch.tensor([PROBS[i] for i in order])).repeat(n, 1)
    sampler = make_row_sampler(list(range(first_seed, first_seed + n)), temperature, top_p)
    out = sampler(None, logits)
    assert torch.isfinite(out).sum(-1).eq(1).all()  # exactly one token left per row
    picked = out.argmax(-1)
    return torch.tensor(order)[picked]  # back to indices of PROBS


def frequencies(tokens: torch.Tensor) -> list[float]:
    return [float((tokens == i).float().mean()) for i in range(len(PROBS))]


def test_draws_follow_the_softmax() -> None:
    assert frequencies(draw(4000, 1.0, 1.0)) == pytest.approx(PROBS, abs=0.03)


def test_temperature_reshapes_the_distribution() -> None:
    scaled = [p ** (1 / 0.5) for p in PROBS]
    expected = [s / sum(scaled) for s in scaled]
    assert frequencies(draw(4000, 0.5, 1.0)) == pytest.approx(expected, abs=0.03)


def test_top_p_keeps_the_smallest_prefix_reaching_p() -> None:
    # cumulative before each token: 0, 0.5, 0.8, 0.95 -> with top_p 0.7 only the first two stay
    assert frequencies(draw(4000, 1.0, 0.7)) == pytest.approx([0.625, 0.375, 0.0, 0.0], abs=0.03)
    assert frequencies(draw(500, 1.0, 0.4)) == [1.0, 0.0, 0.0, 0.0]


def test_a_row_depends_only_on_its_seed() -> None:
    together = draw(50, 1.0, 1.0, first_seed=100)
    alone = torch.cat([draw(1, 1.0, 1.0, first_seed=100 + i) for i in range(50)])
    assert torch.equal(together, alone)


def test_row_seeds() -> None:
    assert row_seeds(5, 3) == [5, 6, 7]
    assert row_seeds([9, 4], 2) == [9, 4]
    with pytest.raises(ValueError):
        row_seeds([1], 2)
    fresh = row_seeds(None, 2)
    assert len(fresh) == 2 and all(0 <= s < 2**62 for s in fresh)


@pytest.mark.parametrize(("t", "p", "n"), [(-0.1, 0.9, 8), (1.0, 0.0, 8), (1.0, 1.5, 8), (1.0, 0.9, 0)])
def test_bad_sampling_settings_are_usage_errors(t: float, p: float, n: int) -> None:
    with pytest.raises(UsageError):
        check_sampling(t, p, n)
