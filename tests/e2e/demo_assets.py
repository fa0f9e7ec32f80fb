"""Everything the shipped scripts' tests (test_e2e_scripts.py) need, built locally: tiny random models of
the real architecture classes, scene images of the miniature world (clipdpo_mini.world, its one scene
generator), a stand-in AMBER folder and a labelled zero-shot set of one-object scenes.
"""

from __future__ import annotations

import os
import shlex
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
    from clipdpo_mini.demo import write_zeroshot_set
    from clipdpo_mini.models.tiny_clip import build_tiny_clip
    from clipdpo_mini.models.tiny_llava import build_tiny_llava
    from clipdpo_mini.models.tiny_llm import DEMO_REPLY, build_tiny_llm
    from clipdpo_mini.world import draw_scene, sample_scene, scene_file
    from tests.fixtures.tiny_amber import build_tiny_amber

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
        os.makedirs(images)
        for index in range(n_images):  # the images alone (a caption folder): no scenes.jsonl beside them
            draw_scene(sample_scene(index)).save(os.path.join(images, scene_file(index)))
    amber = os.path.join(out_dir, "amber")
    if not os.path.isdir(amber):
        build_tiny_amber(amber, n_images=3)
    zeroshot = os.path.join(out_dir, "zeroshot")
    if not os.path.isdir(zeroshot):
        write_zeroshot_set(zeroshot, per_class)
    return DemoAssets(clip, llava_dir, llm_dir, images, amber, zeroshot)
