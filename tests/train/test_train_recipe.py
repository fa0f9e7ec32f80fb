"""`train --config`: clipdpo's own option names, TRL config fields and a `trl dpo` recipe's names (read with
TRL's own parser), typed options winning, anything else refused in one line."""

from __future__ import annotations

import pytest

from tests.train.train_helpers import main_in_process

# A `trl dpo` recipe as TRL documents one (trl/scripts/dpo.py's example command line, as a --config YAML; the
# ModelConfig / ScriptArguments / DPOConfig names of TRL's own example_config.yaml).
TRL_DPO_RECIPE = """\
model_name_or_path: Qwen/Qwen2-0.5B-Instruct
dataset_name: trl-lib/ultrafeedback_binarized
learning_rate: 5.0e-6
num_train_epochs: 1
per_device_train_batch_size: 2
max_steps: 1000
gradient_accumulation_steps: 8
output_dir: Qwen2-0.5B-DPO
use_peft: true
lora_r: 32
lora_alpha: 16
lr_scheduler_type: cosine
report_to:
  - tensorboard
"""


@pytest.fixture
def captured(monkeypatch):
    """The TrainSettings `clipdpo train` would train with (training itself replaced)."""
    import clipdpo_cli.train.trainer as trainer

    seen = {}

    def fake_run_training(settings):
        seen["settings"] = settings
        raise SystemExit(0)

    monkeypatch.setattr(trainer, "run_training", fake_run_training)
    return seen


def test_a_trl_dpo_recipe_is_read(captured, capsys, toy_pairs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipe.yaml").write_text(TRL_DPO_RECIPE)
    code, _, err = main_in_process(capsys, "train", toy_pairs, "--config", "recipe.yaml")
    assert code == 0, err
    s = captured["settings"]
    assert (s.model, s.output_dir, s.dataset_id) == ("Qwen/Qwen2-0.5B-Instruct", "Qwen2-0.5B-DPO",
                                                     "trl-lib/ultrafeedback_binarized")  # fmt: skip
    assert (s.lora, s.lora_r, s.lora_alpha) == (True, 32, 16)
    assert (s.learning_rate, s.epochs, s.per_device_batch_size, s.max_steps) == (5e-6, 1.0, 2, 1000)
    assert (s.lr_scheduler, s.report_to) == ("cosine", "tensorboard")
    assert s.extra == {"gradient_accumulation_steps": 8}  # a TRL field with no option: to TRL as it is


def test_typed_options_win_over_the_recipe(captured, capsys, toy_pairs, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(TRL_DPO_RECIPE)
    out = str(tmp_path / "mine")
    args = ("--config", str(recipe), "-m", "llava-hf/llava-1.5-7b-hf", "--lora-r", "8", "--output-dir", out)
    code, _, err = main_in_process(capsys, "train", toy_pairs, *args)
    assert code == 0, err
    s = captured["settings"]
    assert (s.model, s.lora_r, s.output_dir, s.lora_alpha) == ("llava-hf/llava-1.5-7b-hf", 8, out, 16)


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("model: m\noutput_dir: o\nlora_dropout: 0.1\ndataset_train_split: train\n",
         "no clipdpo equivalent for dataset_train_split, lora_dropout (it reads"),
        ("model: m\noutput_dir: o\nbeta: fast\n", "beta must be float, got str"),
        ("model_name_or_path: m\nmodel: n\noutput_dir: o\n", "model sets 'model' a second time"),
        ("output_dir: o\n", "--model is required (or model / model_name_or_path in --config)"),
        ("model: m\noutput_dir: o\nenv: [1]\n", "env must be a mapping"),
        ("- beta\n", "must be a mapping of option names and TRL config fields"),
    ],
)  # fmt: skip
def test_what_the_recipe_cannot_mean_is_one_line(yaml, message, toy_pairs, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml)
    code, out, err = main_in_process(capsys, "train", toy_pairs, "--config", str(config))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code in (1, 2) and len(lines) == 1 and "Traceback" not in err and out == "", err[-2000:]
    assert message in lines[0]


def test_recipe_values_go_through_trls_own_parser(tmp_path):
    """use_peft as TRL's HfArgumentParser types it; a value TRL refuses is refused here."""
    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.train.recipe import read_config

    path = tmp_path / "c.yaml"
    path.write_text("model_name_or_path: org/m\nuse_peft: true\nenv:\n  CLIPDPO_RECIPE_TEST: '1'\n")
    recipe = read_config(str(path))
    assert recipe.options == {"model": "org/m", "lora": True} and recipe.trl == {}
    import os

    assert os.environ.pop("CLIPDPO_RECIPE_TEST") == "1"  # `env:` as TrlParser sets it
    path.write_text("lora_r: [1, 2]\n")
    with pytest.raises(UsageError, match="lora_r"):
        read_config(str(path))


def test_every_train_option_can_be_set_by_its_name(tmp_path):
    from clipdpo_cli.train.recipe import read_config

    path = tmp_path / "c.yaml"
    path.write_text("quiet: true\nmax_length: 512\nref_logps: precomputed\nwarmup_ratio: 0\n"
                    "label_smoothing:\n")  # fmt: skip
    recipe = read_config(str(path))
    assert recipe.options == {"quiet": True, "max_length": 512, "ref_logps": "precomputed",
                              "warmup_ratio": 0.0, "label_smoothing": None}  # fmt: skip
    assert isinstance(recipe.options["warmup_ratio"], float) and recipe.trl == {}


def test_the_recipe_is_one_trl_dpo_itself_reads_and_both_read_the_same_values(tmp_path):
    """`trl dpo --config recipe.yaml`'s own parser (trl/scripts/dpo.py make_parser) accepts the file, and
    what it reads is what clipdpo reads (use_cpu / bf16 as TRL needs them on a CPU-only machine)."""
    from trl.scripts.dpo import make_parser

    from clipdpo_cli.train.recipe import read_config

    path = tmp_path / "recipe.yaml"
    path.write_text(TRL_DPO_RECIPE)
    script, config, model, _ = make_parser().parse_args_and_config(
        ["--config", str(path), "--use_cpu", "true", "--bf16", "false"]
    )
    ours = read_config(str(path)).options
    assert ours["model"] == model.model_name_or_path and ours["dataset_id"] == script.dataset_name
    lora = (model.use_peft, model.lora_r, model.lora_alpha)
    assert (ours["lora"], ours["lora_r"], ours["lora_alpha"]) == lora
    assert (ours["learning_rate"], ours["epochs"], ours["per_device_batch_size"], ours["max_steps"]) == (
        config.learning_rate, config.num_train_epochs, config.per_device_train_batch_size, config.max_steps,
    )  # fmt: skip
    assert ours["lr_scheduler"] == config.lr_scheduler_type.value and ours["output_dir"] == config.output_dir


def test_the_docs_name_every_recipe_name_train_reads():
    """docs/training.md's "Bringing a TRL recipe" table names every `trl dpo` name that sets an option (the
    renamed ones and the DPOConfig fields an option of the same name decides), and only names --config
    reads."""
    import re

    from clipdpo_cli.train.recipe import recipe_names, trl_config_fields
    from clipdpo_cli.train.settings import options
    from tests.conftest import REPO

    text = (REPO / "docs" / "training.md").read_text(encoding="utf-8")
    section = text.split("### Bringing a TRL recipe", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`(\w+):?`", row.split(" | ")[0])}
    trl_fields = trl_config_fields()
    fields = {f.name for f in options()}
    setting_options = set(recipe_names()) | (fields & trl_fields)
    assert setting_options <= documented, sorted(setting_options - documented)
    read = setting_options | trl_fields | {"env"}
    assert documented <= read, sorted(documented - read)
