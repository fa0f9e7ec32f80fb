"""One precision vocabulary (models/device.py): one enum, resolved per use (weights, autocast, training)."""

from __future__ import annotations

import pytest
import torch

from clipdpo_cli.commands import clip_options, generation
from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.models import device
from clipdpo_cli.models.device import Precision, Use, resolve_precision, weights_dtype
from tests.conftest import invoke_cli

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_the_command_enums_are_the_one_enum():
    assert generation.Dtype is Precision and clip_options.Precision is Precision
    assert [p.value for p in Precision] == ["auto", "fp32", "bf16", "fp16"]


@pytest.mark.parametrize("bf16_gpu, weights_on_gpu", [(True, Precision.bf16), (False, Precision.fp16)])
def test_auto_is_resolved_per_use(monkeypatch, bf16_gpu, weights_on_gpu):
    monkeypatch.setattr(device, "_bf16_gpu", lambda: bf16_gpu)
    assert resolve_precision("auto", Use.weights, CUDA) is weights_on_gpu
    assert resolve_precision("auto", Use.weights, CPU) is Precision.fp32
    training = Precision.bf16 if bf16_gpu else Precision.fp32  # training never picks fp16 by itself
    assert resolve_precision(Precision.auto, Use.training) is training
    with pytest.raises(UsageError, match="autocast precision must be one of fp32, bf16, fp16, got 'auto'"):
        resolve_precision("auto", Use.autocast, CUDA)


def test_concrete_values_and_torch_names_pass_through():
    for use in Use:
        assert resolve_precision("bf16", use, CPU) is Precision.bf16
        assert resolve_precision("float16", use, CPU) is Precision.fp16
    assert weights_dtype("auto", CPU) is torch.float32 and weights_dtype("bfloat16", CPU) is torch.bfloat16
    with pytest.raises(UsageError, match="weights precision must be one of auto, fp32, bf16, fp16, got 'fp8"):
        resolve_precision("fp8", Use.weights)


def test_hub_model_dtype_and_autocast_use_the_resolver(monkeypatch):
    from clipdpo_cli.models.hub import model_dtype

    monkeypatch.setattr(device, "_bf16_gpu", lambda: False)
    assert model_dtype("auto", CUDA) is torch.float16 and model_dtype("fp32", CUDA) is torch.float32
    assert type(device.autocast(CPU, "fp32")).__name__ == "nullcontext"
    with device.autocast(CPU, "bf16"):
        assert torch.get_autocast_dtype("cpu") is torch.bfloat16 and torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("command", ["score", "categorize"])
def test_clip_precision_has_no_auto_and_its_help_says_what_it_is(command):
    result = invoke_cli(command, "-", "--precision", "auto")
    assert result.exit_code == 2 and "Invalid value for '--precision'" in result.stderr
    assert "'auto' is not one of fp32, bf16, fp16" in result.stderr
    helps = invoke_cli(command, "--help").stdout
    assert "<fp32|bf16|fp16>" in helps and "CLIP scorer compute precision" in helps


def test_dtype_help_says_it_is_the_weight_dtype():
    assert "LVLM/LLM weight dtype" in invoke_cli("caption", "--help").stdout


@pytest.mark.parametrize(
    "value, message",
    [("bogus", "Expected one of"), pytest.param("cuda:0", "cuda:0: no CUDA device is visible", marks=(
        pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")))],
)
def test_device_is_checked_when_parsed(value, message):
    result = invoke_cli("categorize", "-", "--device", value)
    assert result.exit_code == 2 and "Invalid value for '--device'" in result.stderr
    assert message in result.stderr


def test_train_precision_is_the_training_use_of_the_one_resolver(monkeypatch):
    from clipdpo_cli.train.losses import LOSSES
    from clipdpo_cli.train.settings import TrainSettings, config_kwargs, training_precision

    monkeypatch.setattr(device, "_bf16_gpu", lambda: True)
    assert training_precision("auto") == "bf16"  # device._bf16_gpu decides it, so the resolver ran
    monkeypatch.setattr(device, "_bf16_gpu", lambda: False)
    assert training_precision("auto") == "fp32" and training_precision("float16") == "fp16"
    with pytest.raises(UsageError, match="training precision must be one of auto, fp32, bf16, fp16, got"):
        training_precision("fp8")
    settings = TrainSettings(pairs="p.jsonl", output_dir="o", model="m", precision="bf16")
    kwargs = config_kwargs(settings, LOSSES["dpo"])
    assert (kwargs["bf16"], kwargs["fp16"]) == (True, False)
    helps = " ".join(invoke_cli("train", "--help").stdout.split())
    assert "Training mixed precision (master weights fp32)" in helps
