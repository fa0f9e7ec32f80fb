"""Training defaults at real size: what trains, the dtype each pass loads its weights in, the LoRA rate.

The vision tower is frozen by default (the paper, Sec. 5) and the projector trains in full fine-tuning;
weights no optimizer updates (the live reference, the LoRA base, `ref-logps`, the inference passes) are
loaded in the run's compute precision with requires_grad off; `--lora` without `--learning-rate` trains at
RLAIF-V's LoRA rate and may use precomputed reference log-probs of the base model. The per-family checks
(every family's vision tower found; a step leaves it unchanged) are in tests/models/families/.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from clipdpo_cli.train.losses import resolve_loss
from clipdpo_cli.train.settings import TrainSettings
from tests.train.train_helpers import main_in_process

FAST = ("--per-device-batch-size", "2", "--batch-size", "2", "--warmup-ratio", "0", "--logging-steps", "1",
        "--no-gradient-checkpointing", "--num-workers", "0")  # fmt: skip


def settings(tmp_path, **kw) -> TrainSettings:
    base = dict(pairs="-", model="m", output_dir=str(tmp_path), batch_size=2, per_device_batch_size=2,
                gradient_checkpointing=False, quiet=True)  # fmt: skip
    return TrainSettings(**{**base, **kw})


def test_learning_rate_default_depends_on_lora(tmp_path):
    from clipdpo_cli.train.build import make_config

    dpo = resolve_loss("dpo")
    assert make_config(settings(tmp_path), dpo).learning_rate == 5e-7  # the paper's full fine-tune rate
    lora = make_config(settings(tmp_path, lora=True), dpo).learning_rate
    assert lora == 1e-5 and lora >= 1e-6  # RLAIF-V's LoRA rate: 5e-7 barely moves a zero-initialised B
    assert make_config(settings(tmp_path, lora=True, learning_rate=2e-4), dpo).learning_rate == 2e-4
    in_file = settings(tmp_path, lora=True, extra={"learning_rate": 3e-5})
    assert make_config(in_file, dpo).learning_rate == 3e-5  # --config fills in over the default


def test_lora_learning_rate_through_the_command(monkeypatch, capsys, toy_pairs, tmp_path):
    import clipdpo_cli.train.trainer as trainer
    from clipdpo_cli.train.build import make_config

    seen = {}

    def fake_run_training(s):
        seen["lr"] = make_config(s, resolve_loss(s.loss)).learning_rate
        raise SystemExit(0)

    monkeypatch.setattr(trainer, "run_training", fake_run_training)
    code, _, err = main_in_process(capsys, "train", toy_pairs, "-m", "m", "--output-dir", str(tmp_path / "o"),
                                   "--lora")  # fmt: skip
    assert code == 0, err
    assert seen["lr"] == 1e-5


def test_weight_dtypes_of_each_kind_of_run():
    from clipdpo_cli.train.loading import weight_dtypes

    f32, bf16, fp16 = torch.float32, torch.bfloat16, torch.float16
    # CPU: training's auto is fp32, so every weight stays fp32 (bf16 on CPU is slow, and the tests' numbers)
    assert tuple(vars(weight_dtypes("auto")).values()) == (f32, f32, f32)
    assert tuple(vars(weight_dtypes("auto", lora=True)).values()) == (f32, f32, f32)
    # mixed precision: fp32 master weights for full fine-tuning, the rest in the compute precision
    assert tuple(vars(weight_dtypes("bf16")).values()) == (bf16, f32, bf16)
    assert tuple(vars(weight_dtypes("bf16", lora=True)).values()) == (bf16, bf16, bf16)
    assert tuple(vars(weight_dtypes("fp16", deepspeed=True)).values()) == (fp16, fp16, fp16)


def trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_full_fine_tune_freezes_the_vision_tower_reference_in_bf16(tiny_llava, toy_pairs, tmp_path):
    from clipdpo_cli.train.build import build_trainer

    trainer, mode, _ = build_trainer(
        settings(tmp_path, pairs=toy_pairs, model=tiny_llava, precision="bf16", ref_logps="live")
    )
    model, ref = trainer.model, trainer.ref_model
    assert mode == "live"
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # master weights
    names = trainable(model)
    assert names and not any(".vision_tower." in n for n in names)
    assert any(".multi_modal_projector." in n for n in names) and any(".language_model." in n for n in names)
    frozen = {n for n, _ in model.named_parameters()} - names
    assert frozen == {n for n, _ in model.named_parameters() if ".vision_tower." in n}
    assert {p.dtype for p in ref.parameters()} == {torch.bfloat16} and not trainable(ref) and not ref.training
    facts = trainer.clipdpo_facts
    assert (facts["vision_tower"], facts["projector"], facts["dtype"]) == ("frozen", "trained", "float32")
    assert facts["trainable_parameters"] == sum(p.numel() for n, p in model.named_parameters() if n in names)


def test_options_train_the_vision_tower_and_freeze_the_projector(tiny_llava, toy_pairs, tmp_path):
    from clipdpo_cli.train.build import build_trainer

    s = settings(tmp_path, pairs=toy_pairs, model=tiny_llava, train_vision_tower=True, train_projector=False)
    trainer, _, _ = build_trainer(s)
    names = trainable(trainer.model)
    assert any(".vision_tower." in n for n in names)
    assert not any(".multi_modal_projector." in n for n in names)
    facts = trainer.clipdpo_facts
    assert (facts["vision_tower"], facts["projector"]) == ("trained", "frozen")


def test_lora_base_in_the_compute_precision_adapter_in_fp32(tiny_llava, toy_pairs, tmp_path):
    from clipdpo_cli.train.build import build_trainer

    trainer, mode, _ = build_trainer(
        settings(tmp_path, pairs=toy_pairs, model=tiny_llava, precision="bf16", lora=True)
    )
    assert mode == "adapter" and trainer.ref_model is None
    params = dict(trainer.model.named_parameters())
    names = trainable(trainer.model)
    assert names and all(".lora_" in n for n in names)  # the projector is frozen with --lora by default
    assert {params[n].dtype for n in names} == {torch.float32}  # peft keeps adapters fp32
    base = {p.dtype for n, p in params.items() if n not in names}
    assert base == {torch.bfloat16}  # the base: no optimizer updates it
    assert trainer.args.learning_rate == 1e-5


def test_lora_can_train_the_vision_tower_in_full(tiny_llava, toy_pairs, tmp_path):
    from clipdpo_cli.train.build import build_trainer

    s = settings(
        tmp_path, pairs=toy_pairs, model=tiny_llava, precision="bf16", lora=True, train_vision_tower=True
    )
    trainer, _, _ = build_trainer(s)
    names = trainable(trainer.model)
    tower = {n for n in names if ".vision_tower." in n}
    assert tower and all("modules_to_save" in n for n in tower)  # a trained full copy beside the adapter
    assert {trainer.model.get_parameter(n).dtype for n in tower} == {torch.float32}  # its master weights
    assert not any(".multi_modal_projector." in n for n in names)


def test_ref_logps_and_inference_models_load_frozen_in_their_precision(tiny_llava):
    from clipdpo_cli.models.lvlm import load_lvlm
    from clipdpo_cli.train.refcache import RefScorer

    for precision, dtype in (("auto", torch.float32), ("bf16", torch.bfloat16)):  # auto on CPU: fp32
        model = RefScorer(tiny_llava, device="cpu", precision=precision).model
        assert {p.dtype for p in model.parameters()} == {dtype}
        assert not trainable(model) and not model.training
    for name, dtype in (("auto", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        model = load_lvlm(tiny_llava, device="cpu", dtype=name).model
        assert {p.dtype for p in model.parameters()} == {dtype}
        assert not trainable(model) and not model.training


def test_llm_loads_frozen(tiny_llm_dir):
    from clipdpo_cli.models.llm import load_llm

    model = load_llm(tiny_llm_dir, device="cpu", dtype="bf16").model
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16} and not trainable(model)


def test_lora_trains_on_precomputed_reference_logps_of_the_base(tiny_llava, toy_pairs, tmp_path, capsys):
    """A fresh adapter leaves the base model unchanged: its reference log-probs are the base model's."""
    ref_pairs = str(tmp_path / "pairs.ref.jsonl")
    code, _, err = main_in_process(capsys, "ref-logps", toy_pairs, "-m", tiny_llava, "-o", ref_pairs, "-q")
    assert code == 0, err[-3000:]
    out = str(tmp_path / "out")
    code, stdout, err = main_in_process(
        capsys, "train", ref_pairs, "--model", tiny_llava, "--output-dir", out, "--max-steps", "2", "--lora",
        "--learning-rate", "1e-2", *FAST,
    )  # fmt: skip
    assert code == 0, err[-3000:]
    summary = json.loads(stdout)
    assert summary["reference"] == "precomputed"
    assert summary["first_loss"] == pytest.approx(math.log(2), abs=1e-4)  # policy == reference at step 1
    assert summary["last_loss"] < summary["first_loss"]
    decided = (summary["learning_rate"], summary["vision_tower"], summary["projector"])
    assert decided == (1e-2, "frozen", "frozen")
    with open(f"{out}/README.md") as fh:
        card = fh.read()
    assert "| vision tower / projector | frozen / frozen |" in card and "| learning rate | 0.01 |" in card


def test_models_load_straight_to_the_process_gpu_unless_deepspeed():
    from types import SimpleNamespace

    from clipdpo_cli.train.loading import load_device

    gpu = torch.device("cuda", 3)  # a DDP rank's own GPU (LOCAL_RANK 3)
    assert load_device(SimpleNamespace(deepspeed=None, device=gpu)) == gpu
    assert load_device(SimpleNamespace(deepspeed="zero3.json", device=gpu)) is None  # DeepSpeed places them
    assert load_device(SimpleNamespace(deepspeed=None, device=torch.device("cpu"))) is None
