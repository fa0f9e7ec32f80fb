"""Each family's vision tower and projector are found, frozen by default and trainable by option."""

from __future__ import annotations

import pytest

from clipdpo_mini.models.families import FAMILIES

# (vision tower, projector) of each family in transformers 5 (and models/mobilevlm), written by hand
PARTS = {
    "llava15": (("model.vision_tower",), ("model.multi_modal_projector",)),
    "llava_next": (("model.vision_tower",), ("model.multi_modal_projector",)),
    "qwen2_vl": (("model.visual.patch_embed", "model.visual.blocks"), ("model.visual.merger",)),
    "qwen2_5_vl": (("model.visual.patch_embed", "model.visual.blocks"), ("model.visual.merger",)),
    "smolvlm": (("model.vision_model",), ("model.connector",)),
    "paligemma": (("model.vision_tower",), ("model.multi_modal_projector",)),
    "mobilevlm_v2": (("model.vision_tower",), ("model.mm_projector",)),
}


def test_every_lvlm_family_is_listed():
    assert set(PARTS) == {k for k, f in FAMILIES.items() if f.kind == "lvlm"}


def under(name: str, prefixes) -> bool:
    return any(name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("key", sorted(PARTS))
def test_parts_found_and_frozen_by_the_options(family_dir, key):
    from transformers import AutoModelForImageTextToText

    from clipdpo_cli.models.hub import load_pretrained
    from clipdpo_cli.train.parts import freeze, vision_parts

    def load():
        return load_pretrained(AutoModelForImageTextToText.from_pretrained, family_dir(key), "model")

    tower, projector = PARTS[key]
    model = load()
    assert (vision_parts(model).tower, vision_parts(model).projector) == (tower, projector)
    names = [n for n, _ in model.named_parameters()]
    assert any(under(n, tower) for n in names) and any(under(n, projector) for n in names)
    for train_tower, train_projector in ((False, True), (True, True), (True, False), (False, False)):
        model = load()
        decided = freeze(model, train_tower, train_projector)
        for name, param in model.named_parameters():
            want = train_tower if under(name, tower) else train_projector if under(name, projector) else True
            assert param.requires_grad == want, (name, train_tower, train_projector)
        assert decided["frozen_parameters"] == sum(
            p.numel() for p in model.parameters() if not p.requires_grad
        )
