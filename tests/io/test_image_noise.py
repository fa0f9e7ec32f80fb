"""POVID's distorted image (caption --image-noise): the forward-diffusion formula, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from clipdpo_cli.io.images import add_diffusion_noise, alpha_bar, noise_betas


def test_alpha_bar_by_hand() -> None:
    assert alpha_bar(0) == 1.0 and alpha_bar(0, "linear") == 1.0  # step 0: the clean image
    # DDPM's linear schedule: beta_1 = 1e-4, beta_2 = 1e-4 + (0.02 - 1e-4) / 999
    assert alpha_bar(1, "linear") == pytest.approx(0.9999, abs=1e-15)
    assert alpha_bar(2, "linear") == pytest.approx(0.9999 * (1 - (1e-4 + 0.0199 / 999)), abs=1e-15)
    assert alpha_bar(1000, "linear") == pytest.approx(4.0358e-5, rel=1e-4)  # DDPM's abar_T
    # POVID's sigmoid schedule: beta_1 = 1e-5 + (5e-3 - 1e-5) * sigmoid(-6)
    beta1 = 1e-5 + 4.99e-3 / (1 + math.exp(6))
    assert beta1 == pytest.approx(2.2338e-5, rel=1e-4)
    assert alpha_bar(1) == pytest.approx(1 - beta1, abs=1e-15)
    betas = noise_betas("sigmoid")
    assert len(betas) == 1000 and betas[-1] == pytest.approx(1e-5 + 4.99e-3 / (1 + math.exp(-6)))
    with pytest.raises(ValueError):
        alpha_bar(1001)
    with pytest.raises(ValueError):
        noise_betas("cosine")


def test_alpha_bar_matches_povids_formula_one_factor_apart() -> None:
    """POVID's add_diffusion_noise(x, t) reads cumprod(1 - betas)[t]: t + 1 factors, so its t = 500 is 501."""
    betas = 1 / (1 + np.exp(-np.linspace(-6, 6, 1000))) * (0.5e-2 - 1e-5) + 1e-5
    povid = np.cumprod(1 - betas)
    assert alpha_bar(501) == pytest.approx(povid[500], rel=1e-12)
    assert alpha_bar(200) == pytest.approx(povid[199], rel=1e-12)
    assert math.sqrt(alpha_bar(501)) == pytest.approx(0.8630, abs=1e-4)
    assert math.sqrt(alpha_bar(500)) == pytest.approx(0.8641, abs=1e-4)


def test_noised_pixels_have_the_formula_mean_and_variance() -> None:
    """A grey image x0 = 128/255 at step 200 (abar = 0.98794): mean sqrt(abar) x0 = 0.49892, variance
    1 - abar = 0.012063 (clipping at 4.5 sd and 8-bit rounding change neither at this tolerance)."""
    x0 = 128 / 255
    image = Image.new("RGB", (300, 300), (128, 128, 128))
    out = np.asarray(add_diffusion_noise(image, 200, seed=1), dtype=np.float64) / 255
    abar = alpha_bar(200)
    assert abar == pytest.approx(0.98794, abs=1e-5)
    assert out.mean() == pytest.approx(math.sqrt(abar) * x0, abs=1e-3)  # 0.49892; abar * x0 is 0.4959
    assert out.var() == pytest.approx(1 - abar, abs=2e-4)  # 0.012063; sqrt(1 - abar) is 0.11
    assert out.mean() == pytest.approx(0.49892, abs=1e-3) and out.var() == pytest.approx(0.012063, abs=2e-4)


def test_noise_is_fixed_by_its_seed_and_step_zero_is_clean() -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8), mode="RGB")
    a, b = add_diffusion_noise(image, 500, seed=7), add_diffusion_noise(image, 500, seed=7)
    assert a.tobytes() == b.tobytes() and a.size == image.size and a.mode == "RGB"
    assert add_diffusion_noise(image, 500, seed=8).tobytes() != a.tobytes()
    assert add_diffusion_noise(image, 500, seed=7, schedule="linear").tobytes() != a.tobytes()
    assert add_diffusion_noise(image, 0, seed=7).tobytes() == image.tobytes()
    grey = add_diffusion_noise(image.convert("L"), 0, seed=7)
    assert grey.mode == "RGB"
