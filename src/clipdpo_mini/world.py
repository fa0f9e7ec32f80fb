"""The miniature world: scenes, their true captions, the biased caption rule and AMBER-format splits.

A scene is 1-3 objects of distinct kinds (6 kinds, 4 colours), each in its own cell of a 2x2 grid on a
32 px image. Its true caption names the objects in reading order: "a red ball, a blue box and a green
kite." The biased rule plants a language prior: when a ball is present and no box, a box of a random colour
is added to the caption with probability `bias` (the SFT captioner learns to hallucinate it).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

KINDS = ("ball", "box", "kite", "tent", "star", "ring")
COLOURS = {"red": (215, 40, 40), "green": (40, 165, 60), "blue": (40, 80, 215), "yellow": (230, 200, 30)}
BACKGROUND = (232, 232, 228)
IMAGE_SIZE = 32
TRIGGER, PLANTED = "ball", "box"  # the biased rule: a ball and no box -> "a ... box" added
DESCRIBE = "Describe this image."  # the AMBER generative query
# The world's five caption prompts (short: tiny models on 2 CPU cores read them), `caption --prompts`.
PROMPTS = (
    "Describe this image.",
    "What is in the picture?",
    "Write a short caption.",
    "List the objects you see.",
    "Give a concise description.",
)


def write_prompts(path: str) -> str:
    """The world's caption prompts as a `clipdpo caption --prompts` file."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("# the miniature world's caption prompts\n" + "\n".join(PROMPTS) + "\n")
    return path


@dataclass(frozen=True)
class Item:
    kind: str
    colour: str
    cell: int  # 0..3, reading order (top-left, top-right, bottom-left, bottom-right)


@dataclass(frozen=True)
class MiniScene:
    index: int
    items: tuple[Item, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(item.kind for item in self.items)

    @property
    def triggers_bias(self) -> bool:
        return TRIGGER in self.kinds and PLANTED not in self.kinds

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "items": [[i.kind, i.colour, i.cell] for i in self.items]}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> MiniScene:
        return cls(int(value["index"]), tuple(Item(k, c, int(cell)) for k, c, cell in value["items"]))


def sample_scene(index: int, seed: int = 0) -> MiniScene:
    """Scene `index` of the world with this seed (deterministic)."""
    rng = random.Random(f"mini-scene:{seed}:{index}")
    n = rng.randint(1, 3)
    kinds = rng.sample(KINDS, n)
    cells = sorted(rng.sample(range(4), n))
    items = tuple(Item(k, rng.choice(sorted(COLOURS)), c) for k, c in zip(kinds, cells, strict=True))
    return MiniScene(index, items)


def draw_scene(scene: MiniScene, size: int = IMAGE_SIZE) -> Any:
    """The PIL image of a scene: each object drawn in its grid cell, slightly jittered."""
    from PIL import Image, ImageDraw

    rng = random.Random(f"mini-draw:{scene.index}:{scene.items}")
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    cell = size // 2
    for item in scene.items:
        ox, oy = (item.cell % 2) * cell, (item.cell // 2) * cell
        m = rng.randint(1, 3)  # margin
        x0, y0 = ox + m + rng.randint(-1, 1), oy + m + rng.randint(-1, 1)
        x1, y1 = ox + cell - m + rng.randint(-1, 0), oy + cell - m + rng.randint(-1, 0)
        _draw_shape(draw, item.kind, (x0, y0, x1, y1), COLOURS[item.colour])
    return image


def _draw_shape(draw: Any, kind: str, box: tuple[int, int, int, int], fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    if kind == "ball":
        draw.ellipse(box, fill=fill)
    elif kind == "box":
        draw.rectangle((x0 + 1, y0 + 1, x1 - 1, y1 - 1), fill=fill)
    elif kind == "kite":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill)
    elif kind == "tent":
        draw.polygon([(x0, y1), (cx, y0), (x1, y1)], fill=fill)
    elif kind == "star":  # a plus sign
        w = max(2, (x1 - x0) // 5)
        draw.rectangle((cx - w, y0, cx + w, y1), fill=fill)
        draw.rectangle((x0, cy - w, x1, cy + w), fill=fill)
    elif kind == "ring":
        draw.ellipse(box, outline=fill, width=3)
    else:
        raise ValueError(f"unknown kind {kind!r}")


def caption_of(pairs: Sequence[tuple[str, str]]) -> str:
    """'a red ball, a blue box and a green kite.' from (colour, kind) pairs in order."""
    parts = [f"a {colour} {kind}" for colour, kind in pairs]
    if len(parts) == 1:
        return parts[0] + "."
    return ", ".join(parts[:-1]) + " and " + parts[-1] + "."


def true_caption(scene: MiniScene) -> str:
    return caption_of([(i.colour, i.kind) for i in scene.items])


def hallucinated_caption(scene: MiniScene, rng: random.Random) -> str:
    """The true caption plus the planted object (a box of a random colour) at the end."""
    pairs = [(i.colour, i.kind) for i in scene.items]
    return caption_of([*pairs, (rng.choice(sorted(COLOURS)), PLANTED)])


def biased_caption(scene: MiniScene, rng: random.Random, bias: float = 0.7) -> str:
    """The SFT caption: the true one, or (a ball, no box, with probability `bias`) the planted box added."""
    if scene.triggers_bias and rng.random() < bias:
        return hallucinated_caption(scene, rng)
    return true_caption(scene)


def tokenizer_corpus() -> str:
    """Text the captioner's tokenizer learns its merges from: the chat template's words, the prompts and
    every object phrase, so that a caption is a few tokens per word (short sequences, fast on a CPU)."""
    phrases = [f"a {colour} {kind}, a {colour} {kind} and" for colour in COLOURS for kind in KINDS]
    return "\n".join(["USER: ASSISTANT: USER: ASSISTANT:", *PROMPTS, *phrases]) + "\n"


# ---- writing splits ---------------------------------------------------------------------------------


def scene_file(index: int) -> str:
    return f"scene_{index:05d}.png"


def write_split(out_dir: str, count: int, seed: int, start: int = 0) -> list[dict[str, Any]]:
    """Write scenes start..start+count-1 as PNG files in out_dir and a scenes.jsonl manifest; return it.

    Each manifest line: {image (absolute path), scene (index, items), caption (true caption)}.
    """
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for index in range(start, start + count):
        scene = sample_scene(index, seed)
        path = os.path.abspath(os.path.join(out_dir, scene_file(index)))
        draw_scene(scene).save(path)
        rows.append({"image": path, "scene": scene.to_json(), "caption": true_caption(scene)})
    with open(os.path.join(out_dir, "scenes.jsonl"), "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    return rows


def read_manifest(path: str) -> list[dict[str, Any]]:
    """A split's scenes.jsonl (a folder or the file itself)."""
    if os.path.isdir(path):
        path = os.path.join(path, "scenes.jsonl")
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_amber_split(
    out_dir: str, count: int, seed: int, start: int, splits: dict[str, int] | None = None
) -> str:
    """An AMBER-layout folder (generative task) of scenes start..start+count-1 that `clipdpo eval-amber
    --task generative` scores: truth = the kinds shown, hallu = the kinds absent, every kind in the
    vocabulary (relation.json keys), no safe words. Also writes scenes.jsonl ({id, image, scene, caption,
    split}). `splits` ({name: size}, sizes adding up to count) names consecutive parts (e.g. val, test):
    one folder to generate for, scored per part with `eval-amber --responses` on that part's ids."""
    from clipdpo_mini.amber import write_amber_folder

    parts = [(name, n) for name, n in (splits or {"all": count}).items()]
    if sum(n for _, n in parts) != count:
        raise ValueError(f"split sizes {splits} do not add up to {count}")
    names = [name for name, n in parts for _ in range(n)]
    image_dir = os.path.join(out_dir, "image")
    scenes = [sample_scene(index, seed) for index in range(start, start + count)]
    annotations, queries, rows = [], [], []
    for n, (scene, split) in enumerate(zip(scenes, names, strict=True), start=1):
        name = f"AMBER_{n}.png"
        truth = list(scene.kinds)
        annotations.append({"id": n, "type": "generative", "truth": truth,
                            "hallu": [k for k in KINDS if k not in truth]})  # fmt: skip
        queries.append({"id": n, "image": name, "query": DESCRIBE})
        path = os.path.abspath(os.path.join(image_dir, name))
        rows.append({"id": n, "image": path, "scene": scene.to_json(), "caption": true_caption(scene),
                     "split": split})  # fmt: skip
    images = ((f"AMBER_{n}.png", draw_scene(scene)) for n, scene in enumerate(scenes, start=1))
    write_amber_folder(out_dir, annotations, queries, {k: [] for k in KINDS}, images=images)
    with open(os.path.join(out_dir, "scenes.jsonl"), "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    return out_dir


def scenes_by_image(rows: Iterable[dict[str, Any]]) -> dict[str, MiniScene]:
    """image path -> scene, from manifest rows (paths as written, and their basenames' absolute form)."""
    return {os.path.abspath(r["image"]): MiniScene.from_json(r["scene"]) for r in rows}
