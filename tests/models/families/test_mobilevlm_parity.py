"""MobileVLM-v2: clipdpo's model against the official implementation, on the same random shrunken weights.

The official code (github Meituan-AutoML/MobileVLM) is not on PyPI. Point MOBILEVLM_OFFICIAL at a checkout
(the folder holding `mobilevlm/`), or make `mobilevlm` importable, to run these tests; otherwise they are
skipped with that reason. It runs unchanged on transformers 5 here; its `AutoConfig.register("mobilevlm")`
is made a no-op while it is imported (clipdpo registered the name first). docs/families.md records the
figures measured.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import shutil
import sys
import types

import pytest
from PIL import Image

PROMPT = "Describe the image."
TOLERANCE = 1e-6  # fp32 max abs logit difference (the issue asks < 1e-4; measured: 0, the same operations)


@contextlib.contextmanager
def import_shims():
    """Import shims for the official code, for the time of its import only.

    It registers 'mobilevlm' with AutoConfig at import (clipdpo already did: made a no-op), and its utils
    module imports `requests` for an OpenAI moderation call no test makes (a stub when it is not installed).
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    saved = AutoConfig.register, AutoModelForCausalLM.register
    AutoConfig.register = staticmethod(lambda *a, **k: None)
    AutoModelForCausalLM.register = staticmethod(lambda *a, **k: None)
    stub = None
    if importlib.util.find_spec("requests") is None:
        stub = sys.modules.setdefault("requests", types.ModuleType("requests"))
    try:
        yield
    finally:
        AutoConfig.register, AutoModelForCausalLM.register = saved
        if stub is not None and sys.modules.get("requests") is stub:
            del sys.modules["requests"]


@pytest.fixture(scope="module")
def official():
    """The official package's modules (skipped visibly without it)."""
    root = os.environ.get("MOBILEVLM_OFFICIAL")
    if root:
        if not os.path.isdir(os.path.join(root, "mobilevlm")):
            pytest.fail(f"MOBILEVLM_OFFICIAL={root} has no mobilevlm/ folder")
        sys.path.insert(0, root)
    try:
        with import_shims():
            llama = importlib.import_module("mobilevlm.model.mobilellama")
            utils = importlib.import_module("mobilevlm.utils")
            conversation = importlib.import_module("mobilevlm.conversation")
        vision = importlib.import_module("mobilevlm.model.vision_encoder")
    except ImportError as exc:
        pytest.skip(
            f"official MobileVLM code not importable ({exc}); set MOBILEVLM_OFFICIAL to a checkout of "
            "github.com/Meituan-AutoML/MobileVLM to run the parity check"
        )
    vision.CLIPVisionModel = TowerUnderMetaInit
    return llama, utils, conversation


class TowerUnderMetaInit:
    """transformers 5 builds a model's modules on the meta device, where the official tower's "dummy-load"
    (`CLIPVisionModel.from_pretrained(mm_vision_tower)` in `__init__`) is refused: there the tower is built
    from its config (its weights come from the checkpoint next, as in the official code)."""

    @staticmethod
    def from_pretrained(name: str, **kwargs):
        from transformers import CLIPVisionConfig, CLIPVisionModel

        try:
            return CLIPVisionModel.from_pretrained(name, **kwargs)
        except RuntimeError as exc:
            if "meta device" not in str(exc):
                raise
            return CLIPVisionModel(CLIPVisionConfig.from_pretrained(name))


def official_copy(folder: str, dest: str, tower: str) -> str:
    """`folder` with mm_vision_tower pointing at a local copy of its CLIP tower (the official code
    instantiates the tower from that name before loading the checkpoint's weights)."""
    shutil.copytree(folder, dest)
    with open(os.path.join(dest, "config.json")) as fh:
        config = json.load(fh)
    config["mm_vision_tower"] = tower
    with open(os.path.join(dest, "config.json"), "w") as fh:
        json.dump(config, fh)
    return dest


def images() -> list[Image.Image]:
    return [Image.new("RGB", (64, 48), (200, 30, 30)), Image.new("RGB", (30, 70), (10, 120, 240))]


def official_logits(official, folder: str, tokenizer, image_processor, pictures) -> tuple:
    """Logits of the official MobileLlamaForCausalLM, with its own prompt, tokenisation and preprocessing."""
    import torch

    llama, utils, conversation = official
    model = llama.MobileLlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    conv = conversation.conv_templates["v1"].copy()
    conv.append_message(conv.roles[0], "<image>\n" + PROMPT)
    conv.append_message(conv.roles[1], None)
    ids = utils.tokenizer_image_token(conv.get_prompt(), tokenizer, return_tensors="pt")
    pixels = utils.process_images(pictures, image_processor, model.config)
    batch = ids.unsqueeze(0).repeat(len(pictures), 1)
    with torch.no_grad():
        logits = model(input_ids=batch, attention_mask=torch.ones_like(batch), images=pixels).logits
    return logits, ids.tolist(), pixels


def ours(folder: str):
    import torch

    from clipdpo_cli.models.lvlm import load_lvlm

    lvlm = load_lvlm(folder, device="cpu", dtype="fp32")
    batch = lvlm.inputs(images(), [PROMPT] * 2)
    with torch.no_grad():
        logits = lvlm.model(**batch).logits
    return lvlm, batch, logits


def collapsed(ids: list[int], image_id: int) -> list[int]:
    """Our ids with each run of image placeholders written as the official -200 marker."""
    out: list[int] = []
    for i in ids:
        if i == image_id:
            if not out or out[-1] != -200:
                out.append(-200)
        else:
            out.append(i)
    return out


def check_against_official(official, folder: str, tmp_path, label: str) -> float:
    lvlm, batch, logits = ours(folder)
    tower = str(tmp_path / f"{label}-tower")
    lvlm.model.model.vision_tower.save_pretrained(tower)
    copy = official_copy(folder, str(tmp_path / f"{label}-official"), tower)
    reference, official_ids, official_pixels = official_logits(
        official, copy, lvlm.tokenizer, lvlm.processor.image_processor, images()
    )
    image_id = lvlm.processor.image_token_id
    assert collapsed(batch["input_ids"][0].tolist(), image_id) == official_ids  # same prompt, same tokens
    assert (batch["pixel_values"] - official_pixels).abs().max() == 0  # same padding and preprocessing
    assert reference.shape == logits.shape
    diff = float((reference - logits).abs().max())
    scale = float(reference.abs().max())
    print(f"\nMobileVLM parity ({label}): max abs logit difference {diff:.3g} over {tuple(logits.shape)} "
          f"logits (largest |logit| {scale:.3g})")  # fmt: skip
    assert scale > 0.1  # the comparison is not between two near-zero outputs
    assert diff < TOLERANCE
    return diff


def test_forward_matches_the_official_implementation(official, family_dir, tmp_path):
    check_against_official(official, family_dir("mobilevlm_v2"), tmp_path, "fixture")


def test_mobilevlm_v1_ldp_projector_matches_the_official_implementation(official, tmp_path):
    """MobileVLM v1 (`ldpnet`): the official LDP (timm LayerNormAct2d, torchvision MobileNetV3 blocks)."""
    from clipdpo_mini.models.families.mobilevlm import build_mobilevlm

    folder = build_mobilevlm(str(tmp_path / "v1"), projector="ldpnet")
    check_against_official(official, folder, tmp_path, "v1 ldpnet")


def test_a_saved_model_still_loads_in_the_official_code(official, family_dir, tmp_path):
    """What `clipdpo train` writes (save_pretrained of model and processor) is the official layout again."""
    from clipdpo_cli.models.lvlm import load_lvlm

    lvlm = load_lvlm(family_dir("mobilevlm_v2"), device="cpu", dtype="fp32")
    saved = tmp_path / "saved"
    lvlm.model.save_pretrained(saved)
    lvlm.processor.save_pretrained(saved)
    check_against_official(official, str(saved), tmp_path, "saved")
