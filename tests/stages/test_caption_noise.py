"""caption --image-noise: each row sees its own noised image, fixed by --seed and its id, and says so."""

from __future__ import annotations

import hashlib
import os

from PIL import Image

from clipdpo_cli.io.images import add_diffusion_noise, load_image
from clipdpo_cli.io.records import make_id
from clipdpo_cli.stages.caption import CaptionSettings, ImageNoise, caption_records


class PixelEcho:
    """A fake generator whose caption of a row is a digest of the pixels it was shown."""

    name = "echo"
    device = None

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def generate(self, images, prompts, **kwargs):
        self.seen += [image.tobytes() for image in images]
        return [hashlib.sha256(image.tobytes()).hexdigest()[:12] for image in images]


def _digest(image: Image.Image) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest()[:12]


def _records(tmp_path, n: int = 3) -> list[dict]:
    out = []
    for i in range(n):
        path = os.path.join(tmp_path, f"{i}.png")
        Image.new("RGB", (20 + i, 16), (40 * i, 100, 200)).save(path)
        out.append({"id": f"img-{i}", "image": path})
    return out


def _settings(**kw) -> CaptionSettings:
    base = {"prompts": ("Describe.", "What is it?"), "samples_per_prompt": 2, "max_new_tokens": 4,
            "workers": 0, "seed": 3}  # fmt: skip
    return CaptionSettings(**{**base, **kw})


def test_each_caption_sees_its_own_noised_image_and_records_the_draw(tmp_path) -> None:
    records = _records(tmp_path)
    noise = ImageNoise(500)
    out = list(caption_records(records, PixelEcho(), _settings(image_noise=noise, batch_size=3)))
    assert len(out) == 3 * 2 * 2
    for r in out:
        draw = int(make_id("image_noise", 3, r["id"]), 16) >> 1  # seeded by --seed and the caption's id
        assert r["image_noise"] == {"steps": 500, "schedule": "sigmoid", "seed": draw}
        expected = add_diffusion_noise(load_image(r["image"]), 500, draw, "sigmoid")
        assert r["text"] == _digest(expected)  # the model saw exactly this image
        assert r["text"] != _digest(load_image(r["image"]))
    assert len({r["text"] for r in out}) == len(out)  # every row its own draw
    # the noise is part of the id: a clean run's captions of the same images never collide with these
    clean = list(caption_records(records, PixelEcho(), _settings(batch_size=3)))
    assert "image_noise" not in clean[0] and {r["id"] for r in clean}.isdisjoint(r["id"] for r in out)
    assert [r["text"] for r in clean] == [_digest(load_image(r["image"])) for r in clean]


def test_noise_does_not_depend_on_batch_size_or_order_and_step_zero_is_clean(tmp_path) -> None:
    records = _records(tmp_path)
    a = list(caption_records(records, PixelEcho(), _settings(image_noise=ImageNoise(300), batch_size=1)))
    b = list(caption_records(records[::-1], PixelEcho(),
                             _settings(image_noise=ImageNoise(300), batch_size=5)))  # fmt: skip
    assert sorted((r["id"], r["text"]) for r in a) == sorted((r["id"], r["text"]) for r in b)
    linear = list(caption_records(records, PixelEcho(),
                                  _settings(image_noise=ImageNoise(300, "linear"))))  # fmt: skip
    assert {r["id"] for r in linear}.isdisjoint(r["id"] for r in a)
    zero = list(caption_records(records, PixelEcho(), _settings(image_noise=ImageNoise(0))))
    assert [r["text"] for r in zero] == [_digest(load_image(r["image"])) for r in zero]
    assert zero[0]["image_noise"]["steps"] == 0
