"""The generator seams (models/generator.py): Lvlm and Llm, and the served ServedLvlm and ServedLlm
(models/served.py, --engine openai), have every protocol method, with its signature."""

from __future__ import annotations

import inspect

import pytest

from clipdpo_cli.models.generator import ImageTextGenerator, LikelihoodScorer, TextGenerator
from clipdpo_cli.models.llm import Llm
from clipdpo_cli.models.lvlm import Lvlm
from clipdpo_cli.models.served import ServedLlm, ServedLvlm


def methods(protocol: type) -> list[str]:
    return [n for n, v in vars(protocol).items() if inspect.isfunction(v) and not n.startswith("_")]


@pytest.mark.parametrize(
    "cls, protocol",
    [
        (Lvlm, ImageTextGenerator),
        (Lvlm, LikelihoodScorer),
        (Llm, TextGenerator),
        (ServedLvlm, ImageTextGenerator),
        (ServedLlm, TextGenerator),
    ],
)
def test_the_loaded_classes_have_the_protocol_signatures(cls, protocol):
    names = methods(protocol)
    assert names, protocol
    for name in names:
        ours = inspect.signature(getattr(cls, name))
        declared = inspect.signature(getattr(protocol, name))
        assert [(p.name, p.default) for p in ours.parameters.values()] == [
            (p.name, p.default) for p in declared.parameters.values()
        ], f"{cls.__name__}.{name}"
    assert "name" in {f.name for f in cls.__dataclass_fields__.values()}


def test_a_loaded_lvlm_is_an_image_text_generator(tiny_llava_path):
    from clipdpo_cli.models.lvlm import load_lvlm

    lvlm = load_lvlm(tiny_llava_path, device="cpu", dtype="fp32")
    assert isinstance(lvlm, ImageTextGenerator) and isinstance(lvlm, LikelihoodScorer)
    assert not isinstance(object(), ImageTextGenerator)
