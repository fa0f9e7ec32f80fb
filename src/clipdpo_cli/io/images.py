"""Image inputs: listing a folder as records and opening one image with a clear error."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


def resolve_image(path: str, root: str | None = None) -> str:
    """An image path as given, or joined to `root` (--image-root) when relative."""
    if root and not os.path.isabs(path):
        return os.path.join(root, path)
    return path


def load_image(path: str, root: str | None = None) -> Any:
    """Open an image as RGB (PIL); a missing or corrupt file raises BadRecord."""
    from PIL import Image, UnidentifiedImageError

    full = resolve_image(path, root)
    try:
        with Image.open(full) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise BadRecord(f"image not found: {full}", reason="image not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadRecord(f"cannot decode image {full}: {exc}", reason="corrupt image") from None
