"""Everything the offline demo (and the end-to-end test) needs, built locally: tiny random models of the
real architecture classes, synthetic scene images, a stand-in AMBER folder and a labelled zero-shot set.

    python -m clipdpo_cli.testing.demo_assets OUT_DIR    # prints shell variables to `eval`
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DemoAssets:
    clip: str  # a name `load_clip` accepts (local-dir:...)
    llava: str  # a model directory
    llm: str  # a model directory
    images: str  # folder of scene images
    amber: str  # AMBER-layout folder
    zeroshot: str  # ImageFolder layout: one sub-folder per class

    def shell(self) -> str:
        return "\n".join(f"{k.upper()}={shlex.quote(v)}" for k, v in asdict(self).items())


def build_demo_assets(out_dir: str, n_images: int = 12, per_class: int = 3) -> DemoAssets:
    """Build (or reuse, when already built) the demo's models and data under out_dir."""
    from clipdpo_cli.testing.scenes import OBJECTS, make_scenes
    from clipdpo_cli.testing.tiny_amber import build_tiny_amber
    from clipdpo_cli.testing.tiny_clip import build_tiny_clip
    from clipdpo_cli.testing.tiny_llava import build_tiny_llava
    from clipdpo_cli.testing.tiny_llm import DEMO_REPLY, build_tiny_llm

    models = os.path.join(out_dir, "models")
    clip_dir, llava_dir, llm_dir = (os.path.join(models, n) for n in ("clip", "llava", "llm"))
    clip = f"local-dir:{clip_dir}"
    if not os.path.exists(os.path.join(clip_dir, "open_clip_config.json")):
        clip = build_tiny_clip(clip_dir)
    if not os.path.exists(os.path.join(llava_dir, "config.json")):
        build_tiny_llava(llava_dir)
    if not os.path.exists(os.path.join(llm_dir, "config.json")):
        build_tiny_llm(llm_dir, reply=DEMO_REPLY, num_layers=1)

    images = os.path.join(out_dir, "images")
    if not os.path.isdir(images):
        make_scenes(images, n_images)
    amber = os.path.join(out_dir, "amber")
    if not os.path.isdir(amber):
        build_tiny_amber(amber, n_images=3)
    zeroshot = os.path.join(out_dir, "zeroshot")
    if not os.path.isdir(zeroshot):
        _zeroshot_set(zeroshot, sorted(OBJECTS), per_class)
    return DemoAssets(clip, llava_dir, llm_dir, images, amber, zeroshot)


def _zeroshot_set(out_dir: str, classes: list[str], per_class: int) -> None:
    """An ImageFolder set: scenes whose main object is the class, `per_class` per class."""
    from clipdpo_cli.testing.scenes import draw_scene

    counts = dict.fromkeys(classes, 0)
    index = 1000
    while min(counts.values()) < per_class:
        image, scene = draw_scene(index)
        index += 1
        label = scene.main_object
        if label in counts and counts[label] < per_class:
            folder = os.path.join(out_dir, label)
            os.makedirs(folder, exist_ok=True)
            image.save(os.path.join(folder, f"{label}_{counts[label]}.jpg"), quality=90)
            counts[label] += 1


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m clipdpo_cli.testing.demo_assets OUT_DIR")
    # Libraries log to stdout while building (e.g. DeepSpeed's logger): keep stdout for the variables.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        assets = build_demo_assets(sys.argv[1])
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    print(assets.shell())


if __name__ == "__main__":
    main()
