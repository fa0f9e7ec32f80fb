"""caption, train (full and LoRA) and eval-amber through the CLI on each real family's shrunken checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from clipdpo_mini.models.families import FAMILIES, PALIGEMMA_TEMPLATE
from tests.conftest import invoke_cli, run_text_cli

KEYS = sorted(FAMILIES)
QUICK = ("--max-steps", "1", "--batch-size", "2", "--per-device-batch-size", "2", "--num-workers", "0",
         "--no-gradient-checkpointing", "--learning-rate", "1e-3", "--warmup-ratio", "0",
         "--logging-steps", "1")  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """Two images, a pairs file, a one-prompt file and PaliGemma's documented template."""
    root = tmp_path_factory.mktemp("family-inputs")
    (root / "imgs").mkdir()
    for i, color in enumerate(("red", "blue")):
        Image.new("RGB", (60 + 10 * i, 40), color).save(root / "imgs" / f"{color}.png")
    with open(root / "pairs.jsonl", "w") as fh:
        for i, color in enumerate(("red", "blue")):
            fh.write(json.dumps({
                "id": f"p{i}", "image": str(root / "imgs" / f"{color}.png"), "prompt": "Describe the image.",
                "chosen": f"A {color} square.", "rejected": "A green dog on a lawn.",
            }) + "\n")  # fmt: skip
    (root / "prompts.txt").write_text("Describe the image.\n")
    (root / "paligemma.jinja").write_text(PALIGEMMA_TEMPLATE)
    return {k: str(root / v) for k, v in
            {"imgs": "imgs", "pairs": "pairs.jsonl", "prompts": "prompts.txt", "template": "paligemma.jinja"}
            .items()}  # fmt: skip


def template_args(key: str, inputs: dict[str, str]) -> list[str]:
    return ["--chat-template", inputs["template"]] if FAMILIES[key].needs_template else []


@pytest.mark.parametrize("key", KEYS)
def test_caption(family_dir, key, inputs):
    result = invoke_cli(
        "caption", inputs["imgs"], "-m", family_dir(key), "--prompts", inputs["prompts"], "--device", "cpu",
        "--max-new-tokens", "4", "--seed", "0", "--batch-size", "2", "-q", *template_args(key, inputs),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2 and {r["kind"] for r in records} == {"caption"}
    assert all(isinstance(r["text"], str) and r["prompt"] == "Describe the image." for r in records)


@pytest.mark.parametrize("key", KEYS)
def test_train_one_step_and_reload(family_dir, key, inputs, tmp_path):
    out = tmp_path / "out"
    result = run_text_cli(
        "train", inputs["pairs"], "--model", family_dir(key), "--output-dir", str(out), *QUICK,
        *template_args(key, inputs),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 1 and summary["pairs"] == 2
    assert summary["first_loss"] == pytest.approx(0.6931, abs=0.05)  # log 2: policy == reference at step 0
    assert (summary["vision_tower"], summary["projector"]) == ("frozen", "trained")
    from clipdpo_cli.models.lvlm import load_lvlm
    from clipdpo_cli.train.loading import load_policy
    from clipdpo_cli.train.parts import vision_parts

    # the default full fine-tune: every vision-tower weight as it was, the projector and the LM trained
    before, after_model = load_policy(family_dir(key)), load_policy(str(out))
    parts, after = vision_parts(before), dict(after_model.named_parameters())
    changed = {n for n, p in before.named_parameters() if not torch.equal(p, after[n])}
    tower = [n for n, _ in before.named_parameters() if any(n.startswith(t + ".") for t in parts.tower)]
    assert tower and not changed & set(tower)
    assert any(n.startswith(parts.projector[0] + ".") for n in changed)
    assert len(changed) > len(before.state_dict()) // 4

    trained = load_lvlm(str(out), device="cpu")  # saved with its processor and template: loads alone
    template = PALIGEMMA_TEMPLATE if FAMILIES[key].needs_template else None
    base = load_lvlm(family_dir(key), device="cpu", chat_template=template)
    assert trained.encoding.end_of_turn_id == base.encoding.end_of_turn_id


@pytest.mark.parametrize("key", ["llava15", "smolvlm", "qwen2_vl", "mobilevlm_v2"])
def test_lora_targets_the_language_model_of_each_family(family_dir, key, inputs, tmp_path):
    """SmolVLM keeps its LM at model.text_model: a fixed 'language_model' regex matched nothing there.
    MobileVLM's CLIP tower has q/k/v projections too: they are not matched."""
    from transformers import AutoModelForImageTextToText

    from clipdpo_cli.models.hub import load_pretrained
    from clipdpo_cli.train.lora import lora_targets

    model = load_pretrained(AutoModelForImageTextToText.from_pretrained, family_dir(key), "model")
    pattern = lora_targets(model)
    import re

    matched = [n for n, _ in model.named_modules() if re.fullmatch(pattern, n)]
    decoder_prefix = "model.text_model." if key == "smolvlm" else "model.language_model."
    assert matched and all(n.startswith(decoder_prefix) for n in matched)
    assert len(matched) == 2 * 7  # 2 layers x (q, k, v, o, gate, up, down)
    result = run_text_cli(
        "train", inputs["pairs"], "--model", family_dir(key), "--output-dir", str(tmp_path / "o"), "--lora",
        *QUICK,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["steps"] == 1


def test_lora_without_projections_names_the_modules_found():
    import torch

    from clipdpo_cli.io.errors import InputError
    from clipdpo_cli.train.lora import lora_targets

    class Decoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc_in = torch.nn.Linear(2, 2)
            self.fc_out = torch.nn.Linear(2, 2)

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lm = Decoder()

        def get_decoder(self):
            return self.lm

    with pytest.raises(InputError, match=r"--lora: no q_proj/.* modules in lm \(Decoder\); its linear "
                       r"modules: fc_in, fc_out$"):  # fmt: skip
        lora_targets(Model())


@pytest.fixture(scope="module")
def tiny_amber(tmp_path_factory) -> str:
    from tests.fixtures.tiny_amber import build_tiny_amber

    return build_tiny_amber(str(tmp_path_factory.mktemp("amber")))


@pytest.mark.parametrize("key", KEYS)
def test_eval_amber(family_dir, key, inputs, tiny_amber):
    result = invoke_cli(
        "eval-amber", "--amber-root", tiny_amber, "--model", family_dir(key), "--device", "cpu",
        "--max-new-tokens", "4", "--task", "existence", "-q", *template_args(key, inputs),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["responses"]["scored"] == 3 and metrics["complete"] is True


def test_eval_amber_without_a_template_names_the_option(family_dir, tiny_amber):
    result = run_text_cli(
        "eval-amber", "--amber-root", tiny_amber, "--model", family_dir("paligemma"), "--device", "cpu"
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith("has no chat template; pass one with --chat-template FILE")
