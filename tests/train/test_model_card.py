"""The model card by the Hub's conventions: front matter (parsed by huggingface_hub), TRL's own card helper
underneath (versions, citations), no local paths, and every command line in it valid at the parser level."""

from __future__ import annotations

import json
import re
import shlex
from importlib.metadata import version

import pytest

from clipdpo_cli.train.model_card import RunFacts, card_text, hub_id_of, license_of

SHELL = {">", ">>", "|", "<", "&&", ";"}


def parse_command_line(line: str) -> None:
    """Parse `clipdpo SUB ARGS` with the real CLI's parser (click's make_context: types, required options,
    arguments), running nothing; a usage error raises. Shell redirections end the command."""
    import typer

    from clipdpo_cli.cli import build_app

    words = shlex.split(line)
    words = words[: next((i for i, w in enumerate(words) if w in SHELL), len(words))]
    assert words[0] == "clipdpo", line
    command = typer.main.get_command(build_app()).commands[words[1]]
    command.make_context(words[1], words[2:])


def facts(tmp_path, **kw) -> RunFacts:
    values = dict(
        base_model=str(tmp_path / "models" / "llava"), base_model_id="llava-hf/llava-1.5-7b-hf",
        pairs_file=str(tmp_path / "data" / "pairs.ref.jsonl"), pairs=750_000, loss="cdpo", beta=0.1,
        label_smoothing=0.1, learning_rate=5e-7, effective_batch=64, epochs=1.0, max_steps=-1,
        reference="precomputed", lora={"r": 16, "alpha": 32, "saved": "adapter"},
        kinds={"caption": 700_000, "qa": 50_000}, scorers=["dfn-h14"], hub_model_id=None,
        output_dir=str(tmp_path / "runs" / "llava-clipdpo"), license="llama2", datasets=["me/coco-pairs"],
    )  # fmt: skip
    values.update(kw)
    return RunFacts(**values)


AMBER = {"benchmark": "AMBER", "task": "all", "AMBER": 88.14, "complete": True,
         "generative": {"CHAIR": 5.12, "Cover": 50.2, "Hal": 30.04, "Cog": 2.0},
         "discriminative": {"Accuracy": 80.0, "Precision": 85.0, "Recall": 80.0, "F1": 82.46}}  # fmt: skip


def test_front_matter_is_what_the_hub_reads(tmp_path):
    from huggingface_hub import ModelCard

    text = card_text(facts(tmp_path), steps=11_719)
    card = ModelCard(text)
    data = card.data.to_dict()
    assert data["base_model"] == "llava-hf/llava-1.5-7b-hf" and data["license"] == "llama2"
    assert data["datasets"] == ["me/coco-pairs"] and data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "image-text-to-text" and "licence" not in data
    assert {"clipdpo", "clip-dpo", "trl", "dpo", "lora", "generated_from_trainer"} <= set(data["tags"])
    assert str(tmp_path) not in text and "/models/" not in text  # names, never local paths
    assert "| preference pairs | `pairs.ref.jsonl`: 750,000 pairs (700,000 caption, 50,000 qa) |" in text
    assert "| loss | cdpo (label smoothing 0.1) |" in text
    assert "| optimizer steps | 11,719 (1 epoch(s)) |" in text
    assert card.text.startswith("\n# llava-clipdpo: CLIP-DPO\n")


def test_the_body_is_trls_card_with_versions_and_the_three_citations(tmp_path):
    text = card_text(facts(tmp_path), steps=1)
    for package, label in (("trl", "TRL"), ("transformers", "Transformers"), ("torch", "Pytorch"),
                           ("datasets", "Datasets"), ("tokenizers", "Tokenizers")):  # fmt: skip
        assert f"- {label}: {version(package)}\n" in text, label
    keys = re.findall(r"^@\w+\{(\w+),", text, flags=re.M)
    assert keys == ["ouali2024clipdpo", "rafailov2023direct", "vonwerra2020trl"]
    assert "https://huggingface.co/papers/2305.18290" in text  # TRL's DPO paper link
    kto = card_text(facts(tmp_path, loss="kto", trainer="kto", label_smoothing=None), steps=1)
    assert "This model was trained with KTO" in kto and "rafailov2023direct" not in kto


def test_amber_figures_when_present_and_none_otherwise(tmp_path):
    assert "## Evaluation" not in card_text(facts(tmp_path), steps=1)
    text = card_text(facts(tmp_path, amber=AMBER), steps=1)
    assert "| CHAIR | Cover | Hal | Cog | Accuracy | Precision | Recall | F1 | AMBER |" in text
    assert "| 5.1 | 50.2 | 30.0 | 2.0 | 80.0 | 85.0 | 80.0 | 82.5 | 88.1 |" in text
    from clipdpo_cli.train.model_card import write_card

    out = tmp_path / "out"
    out.mkdir()
    (out / "amber.json").write_text(json.dumps(AMBER))
    assert "| 5.1 | 50.2 |" in (tmp_path / write_card(str(out), facts(tmp_path), 1)).read_text()


@pytest.mark.parametrize("hub_model_id", [None, "me/llava-clipdpo"])
def test_every_command_line_in_the_card_parses(tmp_path, hub_model_id):
    text = card_text(facts(tmp_path, hub_model_id=hub_model_id), steps=1)
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.startswith("clipdpo ")]
    assert len(lines) == 2 and any("eval-amber" in line for line in lines)
    for line in lines:
        parse_command_line(line)
    with pytest.raises(Exception, match="amber_root") as error:  # the old card's line: the check can fail
        parse_command_line("clipdpo eval-amber AMBER_DIR --model OUT")
    assert type(error.value).__name__ == "MissingParameter"  # typer's own click copy: compared by name


def test_base_model_id_of_a_local_folder(tmp_path):
    folder = tmp_path / "llava"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_name_or_path": "llava-hf/llava-1.5-7b-hf"}))
    assert hub_id_of(str(folder)) == "llava-hf/llava-1.5-7b-hf"
    (folder / "config.json").write_text(json.dumps({"_name_or_path": "/scratch/models/llava"}))
    assert hub_id_of(str(folder)) is None
    assert hub_id_of(str(folder), config_name=str(folder)) is None  # TRL's rule: a folder is no id
    assert hub_id_of(str(folder), config_name="llava-hf/llava-1.5-7b-hf") == "llava-hf/llava-1.5-7b-hf"
    snapshot = tmp_path / "hub" / "models--llava-hf--llava-1.5-7b-hf" / "snapshots" / "a1b2c3"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    assert hub_id_of(str(snapshot)) == "llava-hf/llava-1.5-7b-hf"  # huggingface-cli download's cache
    assert hub_id_of("llava-hf/llava-1.5-7b-hf") == "llava-hf/llava-1.5-7b-hf"


def test_license_from_the_base_models_own_card(tmp_path):
    folder = tmp_path / "llama-based"
    folder.mkdir()
    assert license_of(str(folder), None) == (None, {})
    (folder / "README.md").write_text(
        "---\nlicense: other\nlicense_name: llama3\nlicense_link: LICENSE\n---\n# a model\n"
    )
    assert license_of(str(folder), None) == ("other", {"license_name": "llama3", "license_link": "LICENSE"})
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    assert license_of(str(folder), None) == ("apache-2.0", {})


def test_train_options_reach_the_card(tmp_path):
    """--base-model-id, --license and --dataset-id are settings the card reads (run_facts)."""
    from clipdpo_cli.train.model_card import run_facts
    from clipdpo_cli.train.settings import TrainSettings

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"kind": "caption", "scorer": "ViT-B-32"}\n')
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: mit\n---\n")
    s = TrainSettings(pairs=str(pairs), model=str(folder), output_dir=str(tmp_path / "out"))
    f = run_facts(s, [0], "live", 4)
    assert (f.base_model_id, f.license, f.datasets, f.scorers) == (None, "mit", [], ["ViT-B-32"])
    s = TrainSettings(pairs=str(pairs), model=str(folder), output_dir=str(tmp_path / "out"),
                      base_model_id="org/base", license="apache-2.0", dataset_id="org/a, org/b")  # fmt: skip
    f = run_facts(s, [0], "live", 4)
    assert (f.base_model_id, f.license, f.datasets) == ("org/base", "apache-2.0", ["org/a", "org/b"])
