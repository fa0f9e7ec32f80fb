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


def marked_run(folder, wrote, kept=(), finished=True):
    """A folder as a clipdpo run leaves it: its files and its marker (.clipdpo-run.json)."""
    from clipdpo_cli.train.output_dir import MARKER

    folder.mkdir(parents=True, exist_ok=True)
    for name in (*wrote, *kept):
        if name.startswith(("checkpoint-", "runs")):
            (folder / name).mkdir()
            (folder / name / "trainer_state.json").write_text("{}")
        else:
            (folder / name).write_text("x")
    marker = {"kept": sorted(kept), "wrote": sorted(wrote) if finished else [], "finished": finished}
    (folder / MARKER).write_text(json.dumps(marker))
    return folder


def listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


def test_unrelated_files_do_not_count_and_are_kept(tmp_path):
    from clipdpo_cli.train.output_dir import (
        MARKER,
        OutputPlan,
        check_output_dir,
        prepare_output_dir,
        previous_run,
    )  # fmt: skip

    out = marked_run(
        tmp_path / "model",
        wrote=["model.safetensors", "train_summary.json", "README.md", "checkpoint-2", "runs"],
        kept=["notes.txt", "slurm-1.out"],
    )
    (out / "checkpoint-best").mkdir()  # not a checkpoint-N folder, and not in the marker: never removed
    assert previous_run(str(out)) == [
        "README.md", "checkpoint-2", "model.safetensors", "runs", "train_summary.json"
    ]  # fmt: skip
    assert previous_run(str(tmp_path / "new")) == [] and previous_run(str(tmp_path)) == []
    plan = check_output_dir(str(out), overwrite=True, resume_from_checkpoint=None)
    assert listing(out) == [
        MARKER, "README.md", "checkpoint-2", "checkpoint-best", "model.safetensors", "notes.txt", "runs",
        "slurm-1.out", "train_summary.json",
    ]  # the check removes nothing  # fmt: skip
    assert plan == OutputPlan(str(out), ("README.md", "checkpoint-2", "model.safetensors", "runs",
                                         "train_summary.json"))  # fmt: skip
    prepare_output_dir(plan)
    assert listing(out) == [MARKER, "checkpoint-best", "notes.txt", "slurm-1.out"]
    marker = json.loads((out / MARKER).read_text())
    assert marker["kept"] == ["checkpoint-best", "notes.txt", "slurm-1.out"] and marker["wrote"] == []
    assert marker["finished"] is False


def test_overwrite_of_a_killed_run_removes_what_a_run_writes_that_was_not_there_before(tmp_path):
    """A run killed before it finished has no `wrote` list: the names a run writes that were not there
    when it began are its own; the rest stays."""
    from clipdpo_cli.train.output_dir import MARKER, check_output_dir, prepare_output_dir

    out = marked_run(tmp_path / "m", wrote=["checkpoint-3", "runs", "README.md"], kept=["slurm-9.out"],
                     finished=False)  # fmt: skip
    (out / "notes.txt").write_text("written after the run")
    prepare_output_dir(check_output_dir(str(out), overwrite=True, resume_from_checkpoint=None))
    assert listing(out) == [MARKER, "notes.txt", "slurm-9.out"]


@pytest.mark.parametrize("marker", [False, True])
def test_overwrite_refuses_a_folder_that_never_held_a_clipdpo_run(marker, toy_pairs, tmp_path, capsys):
    """The issue's case: README.md, config.json, tokenizer.json, runs/exp1/results.csv and checkpoint-7/
    of something else; --overwrite used to delete them all, then fail on the missing model. With a marker
    that says they were there before its run began, the same."""
    from clipdpo_cli.train.output_dir import MARKER

    out = tmp_path / "model"
    (out / "runs" / "exp1").mkdir(parents=True)
    (out / "runs" / "exp1" / "results.csv").write_text("a,b\n")
    (out / "checkpoint-7").mkdir()
    for name in ("README.md", "config.json", "tokenizer.json"):
        (out / name).write_text("mine")
    if marker:
        kept = ["README.md", "checkpoint-7", "config.json", "runs", "tokenizer.json"]
        (out / MARKER).write_text(json.dumps({"kept": kept, "wrote": [], "finished": True}))
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    code, stdout, err = train(capsys, toy_pairs, "/no/such/model", str(out), "--overwrite")
    why = f"there before the run its {MARKER} records" if marker else f"no {MARKER} there"
    assert code == 2 and stdout == ""
    assert one_error_line(err) == (
        f"clipdpo train: error: --overwrite: {out} holds README.md, checkpoint-7, config.json, runs, ... "
        f"(5 in all), which no clipdpo run wrote ({why}); --overwrite removes only what a clipdpo run wrote: "
        "move them away or choose another folder"
    )
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before


def previous(tmp_path):
    wrote = ["README.md", "config.json", "model.safetensors", "checkpoint-1", "train_summary.json"]
    return marked_run(tmp_path / "prev", wrote=wrote, kept=["slurm-1.out"])


def test_a_bad_report_to_leaves_the_previous_run_whole(toy_pairs, tiny_llava, tmp_path, capsys):
    out = previous(tmp_path)
    before = listing(out)
    code, _, err = train(capsys, toy_pairs, tiny_llava, str(out), "--overwrite", "--report-to", "tensorbord")
    assert code == 2 and "--report-to: unknown tracker 'tensorbord'" in one_error_line(err)
    assert listing(out) == before


def test_a_model_that_does_not_load_leaves_the_previous_run_whole(toy_pairs, tmp_path, capsys):
    out = previous(tmp_path)
    before = listing(out)
    code, _, err = train(capsys, toy_pairs, str(tmp_path / "no-such-model"), str(out), "--overwrite")
    assert code == 1 and "no-such-model" in one_error_line(err)
    assert listing(out) == before


@pytest.mark.parametrize("overwrite", [(), ("--overwrite",)])
def test_the_output_folder_is_never_the_model_folder(overwrite, toy_pairs, tiny_llava, tmp_path, capsys):
    import shutil

    model = tmp_path / "llava"
    shutil.copytree(tiny_llava, model)
    before = {p.name: p.stat().st_size for p in model.iterdir()}
    link = tmp_path / "link"
    link.symlink_to(model, target_is_directory=True)
    code, _, err = train(capsys, toy_pairs, str(model), str(link), *overwrite)
    assert code == 2 and one_error_line(err) == (
        f"clipdpo train: error: --output-dir {link} is the --model folder: the run would write over that "
        "model's files; choose another folder"
    )
    assert {p.name: p.stat().st_size for p in model.iterdir()} == before


def test_overwrite_never_removes_an_input(toy_pairs, tmp_path, capsys):
    """--model out/checkpoint-1 --output-dir out --overwrite would remove the model it starts from."""
    out = previous(tmp_path)
    code, _, err = train(capsys, toy_pairs, str(out / "checkpoint-1"), str(out), "--overwrite")
    assert code == 2 and one_error_line(err) == (
        f"clipdpo train: error: --overwrite would remove {out / 'checkpoint-1'}, which holds --model "
        f"{out / 'checkpoint-1'}; choose another folder"
    )
    assert "checkpoint-1" in listing(out)


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
    # the run's marker lists every name it wrote, and nothing was there before it
    from clipdpo_cli.train.output_dir import MARKER

    with open(os.path.join(out, MARKER)) as fh:
        marker = json.load(fh)
    assert marker["kept"] == [] and marker["finished"] is True
    assert marker["wrote"] == sorted(set(os.listdir(out)) - {MARKER})
    assert {"checkpoint-1", "model.safetensors", "README.md", "runs", "train_summary.json"} <= set(
        marker["wrote"]
    )
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
    from clipdpo_cli.train.build import make_config
    from clipdpo_cli.train.losses import resolve_loss
    from clipdpo_cli.train.settings import TrainSettings

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
    from clipdpo_cli.train.output_dir import MARKER

    # what was in the folder before the run (its marker's `kept`) stays local, as does the marker
    (tmp_path / MARKER).write_text(json.dumps({"kept": ["slurm-1.out", "notes[1]"], "wrote": []}))
    args = SimpleNamespace(push_to_hub=True, hub_model_id="me/x", hub_token=None, hub_revision=None)
    trainer = SimpleNamespace(args=args, hub_model_id="me/x", is_world_process_zero=lambda: True)
    assert push_output(trainer, str(tmp_path), "msg") == "https://huggingface.co/me/x/commit/abc"
    assert calls == [
        {"repo_id": "me/x", "folder_path": str(tmp_path), "commit_message": "msg", "token": None,
         "revision": None, "ignore_patterns": ["_*", "checkpoint-*", ".clipdpo-run.json*", "slurm-1.out",
                                               "slurm-1.out/*", "notes[[]1]", "notes[[]1]/*"]}
    ]  # fmt: skip
    args.push_to_hub = False
    assert push_output(trainer, str(tmp_path), "msg") is None and len(calls) == 1


# --- LoRA: the adapter alone -------------------------------------------------------------------------------


def test_lora_can_save_the_adapter_alone(tiny_llava, toy_pairs, tmp_path, capsys):
    import torch
    from peft import PeftModel

    from clipdpo_cli.train.loading import load_policy

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
        "--base-model-id",
        "llava-hf/llava-1.5-7b-hf",
    )
    assert code == 0, err[-3000:]
    files = set(os.listdir(out))
    assert {"adapter_config.json", "adapter_model.safetensors", "processor_config.json", "README.md"} <= files
    assert "model.safetensors" not in files
    with open(os.path.join(out, "adapter_config.json")) as fh:
        adapter = json.load(fh)
    # the base by its Hub id, not the local folder (which --push-to-hub would upload; before: the local path)
    assert adapter["r"] == 4 and adapter["base_model_name_or_path"] == "llava-hf/llava-1.5-7b-hf"
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


# --- secrets --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "yaml_text, fields",
    [
        ("hub_token: hf_abcdefXYZ\n", "hub_token"),
        (
            "beta: 0.2\nmodel_init_kwargs:\n  token: hf_abc\nwandb_api_key: k\n",
            "model_init_kwargs.token, wandb_api_key",
        ),
    ],
)
def test_a_token_in_the_config_file_is_refused_before_anything_is_written(
    yaml_text, fields, toy_pairs, tmp_path, capsys
):
    """TrainingArguments keeps hub_token as given: training_args.bin (a pickle of them) would hold it in
    plain text, and --push-to-hub uploads that file."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text)
    out = tmp_path / "o"
    code, _, err = train(capsys, toy_pairs, "/no/such/model", str(out), "--config", str(config))
    assert code == 2 and one_error_line(err) == (
        f"clipdpo train: error: --config {config}: {fields} would be saved in plain text in the output "
        "folder (training_args.bin, uploaded by --push-to-hub): remove it and log in instead "
        "(`hf auth login` or HF_TOKEN)"
    )
    assert not out.exists()


def test_secret_fields_of_a_config():
    from clipdpo_cli.train.settings import secret_fields

    data = {"hub_token": "x", "pad_token": "<pad>", "average_tokens_across_devices": True,
            "include_num_input_tokens_seen": True, "hub_model_id": "me/x", "push_to_hub_token": None,
            "model_init_kwargs": {"token": "hf_x", "torch_dtype": "bfloat16"}, "comet_API_KEY": "k",
            "max_prompt_length": 128}  # fmt: skip
    assert secret_fields(data) == ["hub_token", "model_init_kwargs.token", "comet_API_KEY"]


def test_a_python_caller_is_refused_a_token_too(tmp_path):
    from clipdpo_cli.io.errors import UsageError
    from clipdpo_cli.train.build import check_settings
    from clipdpo_cli.train.losses import resolve_loss
    from clipdpo_cli.train.settings import TrainSettings

    s = TrainSettings(pairs="-", model="m", output_dir=str(tmp_path), extra={"hub_token": "hf_x"})
    with pytest.raises(UsageError, match="^--config: hub_token would be saved in plain text"):
        check_settings(s, resolve_loss("dpo"))


def test_training_args_of_a_run_hold_no_token(overwritten):
    import torch

    out, _ = overwritten
    args = torch.load(os.path.join(out, "training_args.bin"), weights_only=False)
    assert args.hub_token is None


def test_the_train_extra_includes_tensorboard_and_wandb_is_an_extra():
    import importlib.util

    import tomllib

    from tests.conftest import REPO

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extra = project["optional-dependencies"]["train"]
    train = [d.split(">")[0].split("=")[0].split("[")[0].strip() for d in extra]
    assert "tensorboard" in train and importlib.util.find_spec("tensorboard") is not None  # with `train`
    assert [d.split(">")[0] for d in project["optional-dependencies"]["wandb"]] == ["wandb"]
