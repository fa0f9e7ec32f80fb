"""Synthetic scenes for the demo, tests and benchmarks: coloured objects on simple backgrounds.

Each scene is drawn deterministically from its index, and comes with what it shows (object names, colours,
background), so evaluations on it have a ground truth.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 210, 40)}
BACKGROUNDS = {
    "grass": (90, 160, 70),
    "sky": (150, 200, 240),
    "sand": (225, 205, 150),
    "wall": (200, 200, 200),
}
# object name -> shape drawn for it
OBJECTS = {"ball": "circle", "box": "square", "kite": "triangle", "plate": "ellipse"}


@dataclass(frozen=True)
class Scene:
    path: str
    objects: tuple[str, ...]
    colours: tuple[str, ...]
    background: str

    @property
    def main_object(self) -> str:
        return self.objects[0]


def draw_scene(index: int, size: int = 64) -> tuple[object, Scene]:
    """The PIL image of scene `index` and its description (path left empty)."""
    from PIL import Image, ImageDraw

    rng = random.Random(index)
    background = rng.choice(sorted(BACKGROUNDS))
    image = Image.new("RGB", (size, size), BACKGROUNDS[background])
    draw = ImageDraw.Draw(image)
    names = sorted(OBJECTS)
    # the main object is fixed by the index so that every class gets scenes
    objects = [names[index % len(names)]]
    if rng.random() < 0.5:
        objects.append(rng.choice([n for n in names if n != objects[0]]))
    colours = []
    for k, name in enumerate(objects):
        colour = rng.choice(sorted(COLOURS))
        colours.append(colour)
        extent = size // 2 if k == 0 else size // 4
        x0 = rng.randint(0, size - extent)
        y0 = rng.randint(0, size - extent)
        box = (x0, y0, x0 + extent, y0 + extent)
        shape = OBJECTS[name]
        if shape == "circle":
            draw.ellipse(box, fill=COLOURS[colour])
        elif shape == "square":
            draw.rectangle(box, fill=COLOURS[colour])
        elif shape == "triangle":
            draw.polygon(
                [(x0, y0 + extent), (x0 + extent // 2, y0), (x0 + extent, y0 + extent)], fill=COLOURS[colour]
            )
        else:
            draw.ellipse((x0, y0 + extent // 4, x0 + extent, y0 + 3 * extent // 4), fill=COLOURS[colour])
    return image, Scene("", tuple(objects), tuple(colours), background)


def make_scenes(out_dir: str, count: int, size: int = 64, prefix: str = "scene") -> list[Scene]:
    """Write `count` scenes as JPEG files under out_dir and return their descriptions."""
    os.makedirs(out_dir, exist_ok=True)
    scenes = []
    for i in range(count):
        image, scene = draw_scene(i, size)
        path = os.path.join(out_dir, f"{prefix}_{i:04d}.jpg")
        image.save(path, quality=90)
        scenes.append(Scene(path, scene.objects, scene.colours, scene.background))
    return scenes
