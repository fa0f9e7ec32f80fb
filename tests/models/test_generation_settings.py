"""The generation options group (models/generation_settings.py): declared once, a command's defaults from its
stage's dataclass, the group rebuilt from parsed options."""

import dataclasses
from dataclasses import MISSING

import pytest

from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.io.setting import declared, setting
from clipdpo_cli.models.generation_settings import (
    LLM_HELP,
    GenerationSettings,
    generation_options,
    with_default,
)


@dataclasses.dataclass(frozen=True)
class _Stage:
    seed: int | None = setting(None, "The stage's own seed.")  # replaces the group's
    temperature: float = 0.0  # the stage's default becomes the option's
    max_new_tokens: int = 512
    other: str = "x"


def _by_name(fields):
    return {f.name: f for f in fields}


def test_stage_defaults_and_own_fields_decide_a_commands_group():
    group = _by_name(declared(GenerationSettings))
    fields = _by_name(generation_options(_Stage, without=("max_pixels",), model=MISSING, model_help=LLM_HELP))
    assert "seed" not in fields and "max_pixels" not in fields and "other" not in fields
    assert fields["temperature"].default == 0.0 and group["temperature"].default == 0.7
    assert fields["max_new_tokens"].default == 512 and fields["top_p"].default == 0.95
    assert fields["model"].default is MISSING and fields["model"].metadata["help"] == LLM_HELP
    # the same declaration otherwise: help, bounds, flags
    assert fields["temperature"].metadata["help"] == group["temperature"].metadata["help"]
    assert fields["top_p"].metadata["option"] == {"min": 0.0, "max": 1.0}
    assert group["temperature"].default == 0.7  # the group itself is untouched


def test_with_default_copies_the_field():
    f = _by_name(declared(GenerationSettings))["batch_size"]
    g = with_default(f, 3, help="other")
    assert (g.name, g.type, g.default, g.metadata["help"]) == ("batch_size", int, 3, "other")
    assert f.default == 8 and f.metadata["help"] != "other"


def test_group_from_options_builds_the_engine_and_checks_sampling():
    values = {"model": "m", "engine": "openai", "request_timeout": 5.0, "retries": 1, "unrelated": 3}
    gen = GenerationSettings.of(values)
    engine = gen.engine_settings
    assert (engine.engine, engine.timeout, engine.retries, engine.concurrency) == ("openai", 5.0, 1, 16)
    with pytest.raises(UsageError, match="--top-p must be in"):
        GenerationSettings(top_p=0.0)


def test_chat_template_is_a_file_or_the_text(tmp_path):
    path = tmp_path / "t.jinja"
    path.write_text("{{ messages }}")
    assert GenerationSettings(chat_template=str(path)).template == "{{ messages }}"
    assert GenerationSettings(chat_template="{% for m in messages %}{% endfor %}").template.startswith("{%")
    digest = GenerationSettings(chat_template=str(path)).template_digest
    assert digest is not None and len(digest) == 16 and GenerationSettings().template_digest is None
