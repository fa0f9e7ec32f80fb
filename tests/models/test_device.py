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
    # a CLIP scorer's auto: bf16 on a GPU that has it, else fp32 (never fp16 by itself)
    assert resolve_precision("auto", Use.autocast, CUDA) is training
    assert resolve_precision("auto", Use.autocast, torch.device("cuda", 3)) is training
    assert resolve_precision("auto", Use.autocast, CPU) is Precision.fp32
    with pytest.raises(UsageError, match="must be one of auto, fp32, bf16, fp16, got 'fp8'"):
        resolve_precision("fp8", Use.autocast, CUDA)


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
def test_clip_precision_choices_and_its_help_says_what_it_is(command):
    result = invoke_cli(command, "-", "--precision", "fp8")
    assert result.exit_code == 2 and "Invalid value for '--precision'" in result.stderr
    helps = invoke_cli(command, "--help").stdout
    assert "<auto|fp32|bf16|fp16>" in helps and "CLIP scorer compute precision" in helps
    default = next(p.default for p in click_params(command) if p.name == "precision")
    assert default is (Precision.auto if command == "score" else Precision.fp32)  # score: bf16 on a GPU


def click_params(command: str) -> list:
    import typer

    from clipdpo_cli.cli import build_app

    return typer.main.get_command(build_app()).commands[command].params


@pytest.fixture
def four_gpus(monkeypatch):
    """A machine with 4 visible GPUs, as far as resolve_device can tell; records TF32 switches."""
    tf32 = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch, "set_float32_matmul_precision", tf32.append)
    for name in ("ID", "COUNT", "MIN", "STEP"):
        monkeypatch.delenv(f"SLURM_ARRAY_TASK_{name}", raising=False)
    return tf32


def test_shard_k_of_n_runs_on_visible_gpu_k_mod_n(four_gpus, capsys):
    from clipdpo_cli.io.shard import Shard

    for k in range(8):
        assert device.resolve_device("auto", Shard(k, 8)) == torch.device("cuda", k % 4)
    lines = capsys.readouterr().err.splitlines()
    assert lines[5] == "clipdpo: shard 5/8 runs on cuda:1 (K mod 4 visible GPUs)"
    assert len(lines) == 8
    assert device.resolve_device("auto", Shard(0, 1)) == CUDA  # the whole input: the current GPU
    assert device.resolve_device("auto") == CUDA
    assert device.resolve_device("cuda:3", Shard(1, 8)) == torch.device("cuda", 3)  # explicit: kept
    assert device.resolve_device("auto", Shard(6, 8), quiet=True) == torch.device("cuda", 2)
    assert capsys.readouterr().err == ""
    assert four_gpus and set(four_gpus) == {"high"}  # TF32 matrix products on every GPU pick


def test_shard_device_from_the_option_or_slurm(four_gpus, monkeypatch, capsys):
    from clipdpo_cli.commands.options import shard_device

    assert shard_device("auto", "3/4") == "cuda:3" and shard_device("auto", "6/7") == "cuda:2"
    assert shard_device("cpu", "3/4") == "cpu" and shard_device("auto", None) == "auto"
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "8")
    assert shard_device("auto", None) == "cuda:1"
    assert "shard 5/8 from SLURM_ARRAY_TASK_ID=5 of SLURM_ARRAY_TASK_COUNT=8 runs on cuda:1" in (
        capsys.readouterr().err
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert shard_device("auto", "3/4") == "cpu"


@pytest.mark.parametrize(
    "argv",
    [["caption", "{input}", "--shard", "2/3"], ["score", "{input}", "--shard", "2/3"],
     ["ref-logps", "{input}", "-m", "m", "--shard", "2/3"], ["eval-amber", "--model", "m", "--shard", "2/3"]],
)  # fmt: skip
def test_commands_load_their_model_on_the_shards_gpu(four_gpus, monkeypatch, tmp_path, argv):
    """The device a command hands its loader: shard 2/3 on 4 GPUs is cuda:2."""
    from clipdpo_cli.commands import options

    seen = []
    real = options.shard_device

    def spy(value, shard, quiet=False):
        seen.append(real(value, shard, quiet))
        raise SystemExit(0)  # stop before any model loads

    monkeypatch.setattr(options, "shard_device", spy)
    from clipdpo_cli.commands import eval_options

    monkeypatch.setattr(eval_options, "shard_device", spy)  # the benchmarks' settings take it from there
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "a", "image": "x.png", "prompt": "p", "chosen": "c", "rejected": "r"}\n')
    args = [a.replace("{input}", str(path)) for a in argv]
    if args[0] == "eval-amber":
        args += ["--amber-root", str(tmp_path)]
    result = invoke_cli(*args)
    assert result.exit_code == 0, result.stderr
    assert seen == ["cuda:2"]


def test_caption_batch_size_auto_fits_the_device(monkeypatch):
    """KV cache per row = 2 (K, V) x layers x KV heads x head dim x bytes x (1024 + new tokens)."""
    from types import SimpleNamespace

    text = SimpleNamespace(
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, hidden_size=4096
    )
    llava_7b = SimpleNamespace(config=SimpleNamespace(get_text_config=lambda: text), dtype=torch.bfloat16)
    assert device.kv_bytes_per_token(llava_7b) == 2 * 32 * 32 * 128 * 2 == 512 * 1024
    assert device.generation_batch_size(llava_7b, CPU, 128) == 16
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda _device=None: (65 * gib, 80 * gib))
    # 0.7 x 65 GiB / (0.5 MiB x 1152 tokens) = 80.9 rows -> 64
    assert device.generation_batch_size(llava_7b, CUDA, 128) == 64
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda _device=None: (125 * gib, 141 * gib))
    assert device.generation_batch_size(llava_7b, CUDA, 128) == 128  # an H200: 155.6 rows
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda _device=None: (1000 * gib, 1000 * gib))
    assert device.generation_batch_size(llava_7b, CUDA, 128) == 256  # the ceiling
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda _device=None: (gib // 4, 24 * gib))
    assert device.generation_batch_size(llava_7b, CUDA, 128) == 1  # never 0
    text.num_key_value_heads = 8  # grouped-query attention: a quarter of the cache per row
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda _device=None: (65 * gib, 80 * gib))
    assert device.generation_batch_size(llava_7b, CUDA, 128) == 256
    bare = SimpleNamespace(config=SimpleNamespace(), dtype=torch.float16)
    assert device.generation_batch_size(bare, CUDA, 128) == 16  # no KV size in the config


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
