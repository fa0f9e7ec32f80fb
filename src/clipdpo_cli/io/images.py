"""Image inputs: listing a folder as records, and opening one image with a clear error (the one decoder and
error policy of every stage: load_image decodes, verify_image checks ahead that an image would decode)."""

from __future__ import annotations

import io
import math
import os
import re
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from clipdpo_cli.io.errors import BadRecord, InputError
from clipdpo_cli.io.records import make_id

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def list_images(folder: str) -> Iterator[dict[str, Any]]:
    """One record {"id", "image"} per image under `folder` (recursive, sorted, common extensions)."""
    if not os.path.isdir(folder):
        raise InputError(f"image folder not found: {folder}")
    found = False
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
                found = True
                path = os.path.join(root, name)
                yield {"id": make_id("image", path), "image": path}
    if not found:
        raise InputError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {folder}")


def count_images(folder: str) -> int:
    """How many images `list_images(folder)` yields (a listing only, for a progress total)."""
    return sum(
        1
        for _, _, files in os.walk(folder)
        for name in files
        if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")
    )


IMAGE_ROOT_ENV = "CLIPDPO_IMAGE_ROOT"


def image_root(root: str | None = None) -> tuple[str | None, str]:
    """The folder relative 'image' paths resolve under, and where it came from: `root` (a command's
    --image-root) first, else the CLIPDPO_IMAGE_ROOT environment variable (set once for a whole pipeline)."""
    if root:
        return root, "--image-root"
    env = os.environ.get(IMAGE_ROOT_ENV)
    return (env, IMAGE_ROOT_ENV) if env else (None, "")


def resolve_image(path: str, root: str | None = None) -> str:
    """An image path as given, or, when relative, under the image root (`root` or $CLIPDPO_IMAGE_ROOT).

    A joined path is absolute, so resolving it again (a stage that resolves, then loads) changes nothing.
    """
    folder, _ = image_root(root)
    if folder and not os.path.isabs(path):
        return os.path.join(os.path.abspath(folder), path)
    return path


def _not_found(path: str, root: str | None) -> BadRecord:
    """'image not found', naming the path tried and the image root it was (or was not) resolved under."""
    full = resolve_image(path, root)
    folder, origin = image_root(root)
    if folder and not os.path.isabs(path):
        where = f"resolved under the image root {folder} from {origin}"
    elif folder:
        where = f"an absolute path; the image root {folder} from {origin} applies to relative paths only"
    else:
        cwd = os.getcwd()
        where = "no image root set" if os.path.isabs(path) else f"relative to the current folder {cwd}"
        where += f"; set the image root with --image-root DIR or {IMAGE_ROOT_ENV}=DIR"
    return BadRecord(f"image not found: {full} ({where})", reason="image not found")


# Image.open runs PIL's decompression-bomb check on the header; its warning (more than MAX_IMAGE_PIXELS
# pixels) is turned into an error under warnings.catch_warnings, which changes process-wide state, so the
# opens (header reads only, decoding stays parallel) take turns. A forked child (a DataLoader worker) gets a
# fresh lock, in case the fork came while a thread held it.
_OPEN_LOCK = threading.Lock()


def _new_lock() -> None:
    global _OPEN_LOCK
    _OPEN_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_new_lock)


def _bad_image(full: str, exc: BaseException) -> BadRecord:
    """The BadRecord of an image that PIL refused: too large (a decompression bomb) or undecodable."""
    from PIL import Image

    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels, " if found else ""
        limit = f"{Image.MAX_IMAGE_PIXELS:,}" if Image.MAX_IMAGE_PIXELS else "unset"
        return BadRecord(
            f"image too large: {full} ({size}over the decompression bomb limit, "
            f"PIL.Image.MAX_IMAGE_PIXELS = {limit})",
            reason="image too large",
        )
    if isinstance(exc, FileNotFoundError):
        return BadRecord(f"image not found: {full}", reason="image not found")
    return BadRecord(f"cannot decode image {full}: {exc}", reason="corrupt image")


@contextmanager
def _open(full: str, data: bytes | None = None) -> Iterator[Any]:
    """PIL's Image.open of `full` (or of `data`, the bytes of an image named `full`); whatever PIL refuses,
    here or while decoding in the block, is BadRecord."""
    from PIL import Image, UnidentifiedImageError

    refused = (
        Image.DecompressionBombError, Image.DecompressionBombWarning, UnidentifiedImageError,
        OSError, ValueError, EOFError, SyntaxError, struct.error,
    )  # fmt: skip
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(full if data is None else io.BytesIO(data))
        with img:
            yield img
    except refused as exc:
        raise _bad_image(full, exc) from None


def _opened(path: str, root: str | None) -> Any:
    """_open of the resolved path; a missing file is _not_found (naming the image root)."""
    full = resolve_image(path, root)
    if not os.path.exists(full):
        raise _not_found(path, root)
    return _open(full)


def load_image(path: str, root: str | None = None) -> Any:
    """Open an image as RGB (PIL). A missing, undecodable or too large file raises BadRecord.

    Too large is PIL's decompression-bomb limit: more than PIL.Image.MAX_IMAGE_PIXELS pixels (PIL itself
    warns above it and refuses twice that); setting it to None lifts the limit.
    """
    with _opened(path, root) as img:
        return img.convert("RGB")


def verify_image(path: str, root: str | None = None) -> None:
    """Check that an image decodes as load_image would decode it, keeping no pixels (BadRecord if not).

    The whole file goes through the decoder (a header check such as PIL's verify() misses a truncated JPEG),
    JPEGs at 1/8 scale, which skips most of their decoding work.
    """
    with _opened(path, root) as img:
        img.draft(None, (1, 1))
        img.load()


def verify_image_bytes(data: bytes, name: str) -> None:
    """verify_image for an image that arrives as bytes (a dataset column, a webdataset member) named `name`
    in messages: the same decoder, bomb limit and error policy."""
    with _open(name, data) as img:
        img.draft(None, (1, 1))
        img.load()


# ---- diffusion noise (POVID's distorted image) -------------------------------------------------------
# POVID (Zhou et al. 2024) triggers a VLLM's language prior by showing it an image noised by a diffusion
# model's forward process, x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, eps ~ N(0, I), on the pixels in
# [0, 1]. Its code (YiyangZhou/POVID, llava/train/train_dpo_inherent.py, add_diffusion_noise) uses 1000
# steps with betas = sigmoid(linspace(-6, 6, 1000)) * (5e-3 - 1e-5) + 1e-5 and step 500; `linear` is
# DDPM's schedule (Ho et al. 2020: betas linear from 1e-4 to 0.02 over 1000 steps). docs/generation.md.

NOISE_SCHEDULES = ("sigmoid", "linear")
NOISE_MAX_STEPS = 1000


def noise_betas(schedule: str = "sigmoid") -> list[float]:
    """The 1000 betas of a schedule: `sigmoid` (POVID's) or `linear` (DDPM's)."""
    n = NOISE_MAX_STEPS
    grid = [i / (n - 1) for i in range(n)]
    if schedule == "sigmoid":
        return [1e-5 + (5e-3 - 1e-5) / (1.0 + math.exp(-(-6.0 + 12.0 * g))) for g in grid]
    if schedule == "linear":
        return [1e-4 + (0.02 - 1e-4) * g for g in grid]
    raise ValueError(f"unknown noise schedule {schedule!r} (known: {', '.join(NOISE_SCHEDULES)})")


def alpha_bar(steps: int, schedule: str = "sigmoid") -> float:
    """abar_t = prod over the first `steps` betas of (1 - beta): 1 at step 0 (the clean image).

    POVID's add_diffusion_noise(x, t) reads its cumulative product at index t, i.e. t + 1 factors: its
    step 500 is steps=501 here (sqrt(abar) 0.8630 against 0.8641 at 500)."""
    if not 0 <= steps <= NOISE_MAX_STEPS:
        raise ValueError(f"noise steps must be in 0..{NOISE_MAX_STEPS}, got {steps}")
    return math.prod(1.0 - b for b in noise_betas(schedule)[:steps])


def add_diffusion_noise(image: Any, steps: int, seed: int, schedule: str = "sigmoid") -> Any:
    """The RGB PIL image noised by `steps` forward-diffusion steps, from a N(0, I) draw fixed by `seed`.

    The pixels are read in [0, 1], noised, clipped back to [0, 1] and rounded to 8 bits (POVID's tensor ->
    PIL conversion, `mul(255).byte()`, wraps values outside [0, 1] around instead). Step 0 returns a copy.
    """
    import numpy as np
    from PIL import Image

    abar = alpha_bar(steps, schedule)
    rgb = image.convert("RGB")
    if steps == 0:
        return rgb.copy()
    x0 = np.asarray(rgb, dtype=np.float64) / 255.0
    eps = np.random.default_rng(seed).standard_normal(x0.shape)
    xt = np.clip(math.sqrt(abar) * x0 + math.sqrt(1.0 - abar) * eps, 0.0, 1.0)
    return Image.fromarray(np.rint(xt * 255.0).astype(np.uint8), mode="RGB")
