"""The images reader: a folder of image files, one record per image (io.images.list_images), for the
stages that take images (caption, ask)."""

from __future__ import annotations

from clipdpo_cli.io.images import list_images
from clipdpo_cli.io.jsonl import BadLineHandler
from clipdpo_cli.io.sources.formats import InputSettings, Read, counted
from clipdpo_cli.io.stage import StageContext


def read_image_folder(
    path: str, options: InputSettings, ctx: StageContext, on_bad_line: BadLineHandler, counter: list[int]
) -> Read:
    """One record {id, image} per image file under `path`."""
    return Read(counted(list_images(path), counter))
