"""What `clipdpo train` leaves for publishing, and what it refuses before loading a model: the output-folder
guard (--overwrite), the model card, --push-to-hub / --hub-model-id (config and upload checked without a
network), --lora --save-adapter-only, --report-to trackers, and the training dependencies."""

from __future__ import annotations

import json
import os

import pytest

from tests.train.train_helpers import QUICK_TRAINING, main_in_process

FAST = ("--per-device-batch-size", "2", *QUICK_TRAINING)


def train(capsys, pairs: str, model: str, out: str, *args: str) -> tuple[int, str, str]:
    return main_in_process(capsys, "train", pairs, "--model", model, "--output-dir", out, *args, *FAST)


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


# --- the output folder -------------------------------------------------------------------------------------


def test_a_folder_with_a_run_is_refused_before_any_model_loads(toy_pairs, tmp_path, capsys):
    out = tmp_path / "model"
    (out / "checkpoint-5").mkdir(parents=True)
    (out / "config.json").write_text("{}")
    (out / "slurm-123.out").write_text("log")
    code, stdout, err = train(capsys, toy_pairs, "/no/such/model", str(out), "--max-steps", "1")
    assert code == 2 and stdout == ""
    assert one_error_line(err) == (
        f"clipdpo train: error: --output-dir {out} already holds a training run (checkpoint-5, config.json); "
        "add --overwrite to replace it, --resume-from-checkpoint last to continue it, "
        "or choose another folder"
    )


def test_unrelated_files_do_not_count_and_are_kept(tmp_path):
    from clipdpo_cli.train.output_dir import check_output_dir, previous_run

    out = tmp_path / "model"
    (out / "runs" / "Dec01").mkdir(parents=True)
    for name in ("model.safetensors", "train_summary.json", "README.md", "notes.txt", "slurm-1.out"):
        (out / name).write_text("x")
    (out / "checkpoint-2").mkdir()
    (out / "checkpoint-best").mkdir()  # not a checkpoint-N folder transformers would resume from
    assert previous_run(str(out)) == [
        "README.md", "checkpoint-2", "model.safetensors", "runs", "train_summary.json"
    ]  # fmt: skip
    assert previous_run(str(tmp_path / "new")) == [] and previous_run(str(tmp_path)) == []
    check_output_dir(str(out), overwrite=True, resume_from_checkpoint=None)
    assert sorted(os.listdir(out)) == ["checkpoint-best", "notes.txt", "slurm-1.out"]


def test_only_the_first_node_of_a_multi_node_job_clears(tmp_path, monkeypatch):
    from clipdpo_cli.train.output_dir import check_output_dir

    (tmp_path / "checkpoint-1").mkdir()
    monkeypatch.setenv("SLURM_NODEID", "1")
    check_output_dir(str(tmp_path), overwrite=True, resume_from_checkpoint=None)
    assert os.listdir(tmp_path) == ["checkpoint-1"]
    monkeypatch.setenv("SLURM_NODEID", "0")
    check_output_dir(str(tmp_path), overwrite=True, resume_from_checkpoint=None)
    assert os.listdir(tmp_path) == []


def test_overwrite_and_resume_exclude_each_other(toy_pairs, tmp_path, capsys):
    code, _, err = train(
        capsys, toy_pairs, "m", str(tmp_path), "--overwrite", "--resume-from-checkpoint", "last"
    )
    assert code == 2 and "--overwrite and --resume-from-checkpoint exclude each other" in one_error_line(err)


@pytest.fixture(scope="module")
def overwritten(tiny_llava, toy_pairs, tmp_path_factory):
    """A 2-step run with a checkpoint per step, then a 1-step --overwrite run over it (with TensorBoard)."""
    from clipdpo_cli.cli import main  # in-process; capsys is function-scoped

    out = str(tmp_path_factory.mktemp("overwritten") / "model")
    runs = []
    for args in (
        ("--max-steps", "2", "--save-steps", "1"),
        ("--max-steps", "1", "--save-steps", "100", "--overwrite", "--report-to", "tensorboard"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", toy_pairs, "--model", tiny_llava, "--output-dir", out, *args, *FAST])
        runs.append(exit_info.value.code)
    return out, runs


def test_overwrite_replaces_the_old_run_and_its_checkpoints(overwritten, toy_pairs, tiny_llava, capsys):
    out, codes = overwritten
    assert codes == [0, 0]
    with open(os.path.join(out, "train_summary.json")) as fh:
        assert json.load(fh)["steps"] == 1
    # the old run's checkpoint-1 and checkpoint-2 are gone; checkpoint-1 is the new run's last-step save
    assert sorted(name for name in os.listdir(out) if name.startswith("checkpoint-")) == ["checkpoint-1"]
    with open(os.path.join(out, "checkpoint-1", "trainer_state.json")) as fh:
        assert json.load(fh)["max_steps"] == 1
    # so resuming picks the new run's checkpoint, not the old run's checkpoint-2
    code, _, err = train(
        capsys, toy_pairs, tiny_llava, out, "--resume-from-checkpoint", "last", "--max-steps", "1"
    )
    assert code == 0 and "checkpoint-1 is at step 1, the run's last: nothing to train" in err


def test_report_to_tensorboard_writes_event_files(overwritten):
    out, _ = overwritten
    events = [f for _, _, files in os.walk(os.path.join(out, "runs")) for f in files]
    assert events and all(f.startswith("events.out.tfevents") for f in events)


# --- the model card ----------------------------------------------------------------------------------------


def test_model_card_names_the_base_model_and_the_run(overwritten, tiny_llava, toy_pairs):
    from huggingface_hub import ModelCard

    out, _ = overwritten
    card = ModelCard.load(os.path.join(out, "README.md"))
    assert "[None]" not in card.text and "fine-tuned version of" not in card.text
    assert f"| base model | a local model (`{os.path.basename(tiny_llava)}`) |" in card.text
    assert f"| preference pairs | `{os.path.basename(toy_pairs)}`: 8 pairs (8 caption) |" in card.text
    assert "| pairs ranked by | not recorded in the pair records |" in card.text
    for row in ("| loss | dpo |", "| beta | 0.1 |", "| reference | live |", "| optimizer steps | 1 (of"):
        assert row in card.text, row
    assert "| effective batch | 4 |" in card.text and "\n# model: CLIP-DPO\n" in card.text
    for path in (tiny_llava, toy_pairs, out):  # no local path reaches a published card
        assert os.path.dirname(os.path.abspath(path)) not in card.text
    data = card.data.to_dict()
    assert data["pipeline_tag"] == "image-text-to-text" and data["library_name"] == "transformers"
    assert "clipdpo" in data["tags"] and "base_model" not in data  # a local folder is no Hub id


# --- --push-to-hub / --hub-model-id ------------------------------------------------------------------------


def test_push_options_reach_the_trl_config(tmp_path):
    from clipdpo_cli.train.losses import resolve_loss
    from clipdpo_cli.train.settings import TrainSettings
    from clipdpo_cli.train.trainer import make_config

    s = TrainSettings(
        pairs="-", model="m", output_dir=str(tmp_path), push_to_hub=True, hub_model_id="me/llava-clipdpo"
    )
    config = make_config(s, resolve_loss("dpo"))
    assert (config.push_to_hub, config.hub_model_id, config.hub_strategy.value) == (
        True, "me/llava-clipdpo", "end"
    )  # fmt: skip
    plain = make_config(TrainSettings(pairs="-", model="m", output_dir=str(tmp_path)), resolve_loss("dpo"))
    assert plain.push_to_hub is False and plain.hub_model_id is None


def test_push_needs_a_token_and_the_network_before_loading(toy_pairs, tmp_path, capsys, monkeypatch):
    import huggingface_hub

    out = str(tmp_path / "o")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    code, _, err = train(capsys, toy_pairs, "/no/such/model", out, "--push-to-hub")
    assert code == 2 and "--push-to-hub: HF_HUB_OFFLINE is set" in one_error_line(err)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    code, _, err = train(capsys, toy_pairs, "/no/such/model", out, "--push-to-hub", "--hub-model-id", "me/x")
    assert code == 2 and "--push-to-hub needs a Hugging Face token" in one_error_line(err)


def test_push_uploads_the_output_folder_without_checkpoints(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import huggingface_hub

    from clipdpo_cli.train.publish import push_output

    calls = []

    class FakeApi:
        def upload_folder(self, **kwargs):
            calls.append(kwargs)
            return SimpleNamespace(commit_url="https://huggingface.co/me/x/commit/abc")

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    args = SimpleNamespace(push_to_hub=True, hub_model_id="me/x", hub_token=None, hub_revision=None)
    trainer = SimpleNamespace(args=args, hub_model_id="me/x", is_world_process_zero=lambda: True)
    assert push_output(trainer, str(tmp_path), "msg") == "https://huggingface.co/me/x/commit/abc"
    assert calls == [
        {"repo_id": "me/x", "folder_path": str(tmp_path), "commit_message": "msg", "token": None,
         "revision": None, "ignore_patterns": ["_*", "checkpoint-*"]}
    ]  # fmt: skip
    args.push_to_hub = False
    assert push_output(trainer, str(tmp_path), "msg") is None and len(calls) == 1


# --- LoRA: the adapter alone -------------------------------------------------------------------------------


def test_lora_can_save_the_adapter_alone(tiny_llava, toy_pairs, tmp_path, capsys):
    import torch
    from peft import PeftModel

    from clipdpo_cli.train.trainer import load_policy

    out = str(tmp_path / "adapter")
    code, _, err = train(
        capsys,
        toy_pairs,
        tiny_llava,
        out,
        "--max-steps",
        "2",
        "--lora",
        "--lora-r",
        "4",
        "--save-adapter-only",
    )
    assert code == 0, err[-3000:]
    files = set(os.listdir(out))
    assert {"adapter_config.json", "adapter_model.safetensors", "processor_config.json", "README.md"} <= files
    assert "model.safetensors" not in files
    with open(os.path.join(out, "adapter_config.json")) as fh:
        assert json.load(fh)["r"] == 4
    base = load_policy(tiny_llava)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    merged = PeftModel.from_pretrained(base, out).merge_and_unload().state_dict()
    changed = {k for k in before if not torch.equal(before[k], merged[k])}
    assert changed and all("language_model" in k and "proj" in k for k in changed)
    with open(os.path.join(out, "README.md")) as fh:
        assert "| LoRA | r 4, alpha 32, adapter only" in fh.read()


def test_save_adapter_only_needs_lora(toy_pairs, tmp_path, capsys):
    code, _, err = train(capsys, toy_pairs, "m", str(tmp_path / "o"), "--save-adapter-only")
    assert code == 2 and "--save-adapter-only goes with --lora" in one_error_line(err)


# --- --report-to and the dependencies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, message",
    [
        ("tensorbord", "--report-to: unknown tracker 'tensorbord' (none, all, or "),
        ("tensorboard,wandb", "--report-to wandb: wandb is not installed (pip install 'clipdpo-cli[wandb]'"),
    ],
)
def test_report_to_is_checked_before_any_model_loads(
    value, message, toy_pairs, tmp_path, capsys, monkeypatch
):
    import transformers.integrations.integration_utils as integrations

    monkeypatch.setattr(integrations, "get_available_reporting_integrations", lambda: ["tensorboard"])
    code, stdout, err = train(capsys, toy_pairs, "/no/such/model", str(tmp_path / "o"), "--report-to", value)
    assert code == 2 and stdout == "" and message in one_error_line(err)


def test_report_to_values(monkeypatch):
    import transformers.integrations.integration_utils as integrations

    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.train.reporting import parse_report_to

    monkeypatch.setattr(
        integrations, "get_available_reporting_integrations", lambda: ["tensorboard", "wandb"]
    )
    assert parse_report_to("none") == [] and parse_report_to(None) == [] and parse_report_to(["none"]) == []
    assert parse_report_to("tensorboard, wandb") == ["tensorboard", "wandb"]
    assert parse_report_to(["wandb"]) == ["wandb"] and parse_report_to("all") == ["tensorboard", "wandb"]
    with pytest.raises(UsageError, match="mlflow is not installed .pip install mlflow"):
        parse_report_to("mlflow")


def test_config_file_report_to_is_checked_too(toy_pairs, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("report_to: [nope]\n")
    code, _, err = train(capsys, toy_pairs, "/no/such/model", str(tmp_path / "o"), "--config", str(config))
    assert code == 2 and "unknown tracker 'nope'" in one_error_line(err)


def test_training_dependencies_include_tensorboard_and_wandb_is_an_extra():
    import importlib.util

    import tomllib

    from tests.conftest import REPO

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = [d.split(">")[0].split("=")[0].split("[")[0].strip() for d in project["dependencies"]]
    assert "tensorboard" in names and importlib.util.find_spec("tensorboard") is not None
    assert [d.split(">")[0] for d in project["optional-dependencies"]["wandb"]] == ["wandb"]
