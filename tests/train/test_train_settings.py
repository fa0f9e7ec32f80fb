"""Each train option is declared once (train/settings.py): its option, settings field and TRL field."""

from __future__ import annotations

import dataclasses

import pytest
import typer

from clipdpo_cli.cli import build_app
from clipdpo_cli.train import settings as train_settings
from clipdpo_cli.train.build import make_config
from clipdpo_cli.train.losses import resolve_loss
from clipdpo_cli.train.settings import TrainSettings, config_kwargs
from tests.train.train_helpers import main_in_process


def captured_settings(monkeypatch, capsys, toy_pairs, tmp_path, *args: str) -> TrainSettings:
    """The TrainSettings `clipdpo train` builds from these options (training itself replaced)."""
    import clipdpo_cli.train.trainer as trainer

    seen = {}

    def fake_run_training(settings):
        seen["settings"] = settings
        raise SystemExit(0)

    monkeypatch.setattr(trainer, "run_training", fake_run_training)
    args = ("-m", "m", "--output-dir", str(tmp_path), *args)
    code, _, err = main_in_process(capsys, "train", toy_pairs, *args)
    assert code == 0, err
    return seen["settings"]


def test_max_grad_norm_reaches_the_trl_config(monkeypatch, capsys, toy_pairs, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("max_grad_norm: 0.25\n")
    s = captured_settings(monkeypatch, capsys, toy_pairs, tmp_path, "--max-grad-norm", "0.5")
    assert s.max_grad_norm == 0.5 and "max_grad_norm" in s.explicit
    assert make_config(s, resolve_loss("dpo")).max_grad_norm == 0.5
    # typed, it wins over --config; untyped, --config's value fills in; neither: transformers' 1.0
    typed = captured_settings(monkeypatch, capsys, toy_pairs, tmp_path, "--max-grad-norm", "0.5", "--config",
                              str(config))  # fmt: skip
    assert make_config(typed, resolve_loss("dpo")).max_grad_norm == 0.5
    filled = captured_settings(monkeypatch, capsys, toy_pairs, tmp_path, "--config", str(config))
    assert make_config(filled, resolve_loss("kto")).max_grad_norm == 0.25
    plain = captured_settings(monkeypatch, capsys, toy_pairs, tmp_path)
    assert make_config(plain, resolve_loss("dpo")).max_grad_norm == 1.0


def test_every_field_an_option_declares_is_a_trl_field_it_sets():
    """An option's `trl` lists the config fields it decides; what `to_trl` builds stays within them."""
    from trl import DPOConfig

    s = TrainSettings(pairs="-", model="m", output_dir="o", max_steps=3, push_to_hub=True, hub_model_id="a/b")
    for f in train_settings.options():
        trl, convert = f.metadata["trl"], f.metadata["to_trl"]
        assert set(trl) <= set(DPOConfig.__dataclass_fields__), f.name
        if convert is not None:
            for loss in ("dpo", "kto"):
                assert set(convert(getattr(s, f.name), s, resolve_loss(loss))) <= set(trl), f.name


def test_the_options_are_the_settings_with_their_defaults():
    command = typer.main.get_command(build_app()).commands["train"]
    params = {p.name: p for p in command.params}
    for f in train_settings.options():
        assert f.name in params, f.name
        if f.metadata["cli_default"] is dataclasses.MISSING and f.default is not dataclasses.MISSING:
            assert params[f.name].default == f.default, f.name
        assert params[f.name].help, f.name
    assert params["max_length"].default == "none" and TrainSettings.max_length is None
    assert params["model"].default is None and "-m" in params["model"].opts  # --config may name it
    assert "Default from the paper (Sec. 5)" in params["epochs"].help
    assert "[default: 5e-07, the paper's (Sec. 5); with --lora 1e-05" in params["learning_rate"].help


def test_cdpo_brings_its_own_label_smoothing_and_other_losses_leave_trls():
    s = TrainSettings(pairs="-", model="m", output_dir="o")
    assert config_kwargs(dataclasses.replace(s, loss="cdpo"), resolve_loss("cdpo"))["label_smoothing"] == 0.1
    assert "label_smoothing" not in config_kwargs(s, resolve_loss("dpo"))  # TRL's default, 0
    given = dataclasses.replace(s, loss="cdpo", label_smoothing=0.2)
    assert config_kwargs(given, resolve_loss("cdpo"))["label_smoothing"] == 0.2
    assert "label_smoothing" not in config_kwargs(given, resolve_loss("kto"))  # KTOConfig has none
    with pytest.raises(Exception, match=r"--label-smoothing must be in \[0, 0.5\)"):
        config_kwargs(dataclasses.replace(s, label_smoothing=0.5), resolve_loss("cdpo"))


def test_write_ref_logps_points_to_the_ref_logps_command(toy_pairs, capsys):
    code, out, err = main_in_process(capsys, "train", toy_pairs, "-m", "m", "--write-ref-logps", "x.jsonl")
    assert code == 2 and out == ""
    assert "clipdpo ref-logps PAIRS -m MODEL -o FILE" in err and "Traceback" not in err


def test_a_new_loss_is_one_table_entry(monkeypatch, tiny_llava, toy_pairs, tmp_path):
    """A Loss entry alone makes a --loss: its TRL loss_type, own defaults and formula reach the trainer."""
    from clipdpo_cli.train import losses
    from clipdpo_cli.train.build import build_trainer

    def halved(delta, beta, label_smoothing):
        return 0.5 * losses.cdpo_loss(delta, beta, label_smoothing)

    entry = losses.Loss("half_cdpo", "dpo", ("sigmoid",), "cDPO / 2", "a test",
                        defaults={"label_smoothing": 0.25}, own_formula=halved)  # fmt: skip
    monkeypatch.setitem(losses.LOSSES, "half_cdpo", entry)
    loss = resolve_loss("Half_CDPO")
    s = TrainSettings(pairs=toy_pairs, model=tiny_llava, output_dir=str(tmp_path), loss="Half_CDPO",
                      per_device_batch_size=2, gradient_checkpointing=False)  # fmt: skip
    trainer, _, _ = build_trainer(s)
    assert (trainer.args.loss_type, trainer.args.label_smoothing) == (["sigmoid"], 0.25)
    assert loss is entry and trainer.own_loss is halved and trainer.label_smoothing == 0.25
    with pytest.raises(Exception, match="only TRL DPO loss types combine"):
        resolve_loss("half_cdpo,sft")  # a loss computed here does not combine with TRL's
