"""The configured TRL trainer of a run, not yet trained: the settings checked, the TRL config made, the
reference mode decided, the pairs validated, the policy (and a live reference) loaded and frozen where the
run says, then DPOTrainer (ClipdpoDPOTrainer) or KTOTrainer over them."""

from __future__ import annotations

import os
from typing import Any

from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.train import parts
from clipdpo_cli.train.data import PairColumns, VisionPairCollator, collect_pairs, unpair
from clipdpo_cli.train.loading import (
    WeightDtypes,
    deepspeed_comm_ready,
    load_device,
    load_policy,
    load_processor,
    load_reference,
    text_max_length,
    weight_dtypes,
)
from clipdpo_cli.train.log import log
from clipdpo_cli.train.losses import Loss, resolve_loss
from clipdpo_cli.train.settings import TrainSettings, check_no_secrets, config_kwargs, train_projector

REF_MODES = ("auto", "live", "precomputed")


def config_class(loss: Loss) -> Any:
    from trl import DPOConfig, KTOConfig

    return DPOConfig if loss.trainer == "dpo" else KTOConfig


def check_settings(s: TrainSettings, loss: Loss) -> None:
    """Mistakes found before any model is loaded: unknown --config fields, impossible batch sizes, what the
    loss itself refuses (Loss.check)."""
    cls = config_class(loss)
    unknown = sorted(k for k in s.extra if k not in cls.__dataclass_fields__)
    if unknown:
        raise UsageError(f"--config: unknown {cls.__name__} field(s): {', '.join(unknown)}")
    if "max_length" in s.extra:
        raise UsageError("--config: set max_length with --max-length (text tokens; images are never cut)")
    check_no_secrets(s.extra)
    loss.validate(config_kwargs(s, loss))


def make_config(s: TrainSettings, loss: Loss) -> Any:
    cls = config_class(loss)
    kwargs = config_kwargs(s, loss)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"invalid training configuration: {exc}") from None


def reference_mode(s: TrainSettings, pairs: PairColumns, loss: Loss) -> str:
    if s.ref_logps not in REF_MODES:
        raise UsageError(f"--ref-logps must be one of {', '.join(REF_MODES)}")
    if s.ref_logps == "precomputed" and not pairs.has_ref:
        raise InputError(
            "--ref-logps precomputed: not every pair has ref_chosen_logps and ref_rejected_logps"
        )
    wanted = s.ref_logps == "precomputed" or (s.ref_logps == "auto" and pairs.has_ref)
    if not wanted:
        return "adapter" if s.lora else "live"
    if loss.trainer != "dpo":
        raise UsageError("precomputed reference log-probs work with the DPO-family losses only, not KTO")
    if s.ref_model and s.ref_logps == "auto":
        log("note: using the reference log-probs stored in the pairs (--ref-logps live to run --ref-model)")
    expected = s.ref_model or s.model
    if pairs.ref_model and os.path.abspath(pairs.ref_model) != os.path.abspath(expected):
        log(
            f"warning: reference log-probs were computed with '{pairs.ref_model}', "
            f"the reference is '{expected}'"
        )
    return "precomputed"


def usable_pairs(s: TrainSettings, pairs: PairColumns | None) -> PairColumns:
    """The pairs given, else those of s.pairs validated; none usable is an InputError."""
    from clipdpo_cli.io.jsonl import read_jsonl

    if pairs is None:
        pairs = collect_pairs(read_jsonl(s.pairs), s.image_root, skip_bad=s.skip_bad)
    if not len(pairs):
        raise InputError(f"{s.pairs}: no usable pairs")
    return pairs


def build_trainer(
    s: TrainSettings, pairs: PairColumns | None = None, checkpoint: str | None = None
) -> tuple[Any, str, PairColumns]:
    """The configured TRL trainer (not yet trained), the reference mode and the validated pairs.

    `checkpoint` is the resolved --resume-from-checkpoint (checkpoint.resolve_checkpoint), if any.
    """
    loss = resolve_loss(s.loss)
    check_settings(s, loss)
    pairs = usable_pairs(s, pairs)
    ref_mode = reference_mode(s, pairs, loss)
    processor = load_processor(s.model, s.chat_template, s.max_pixels)
    max_text = text_max_length(s.max_length)
    config = make_config(s, loss)  # before loading the model (ZeRO-3 init)
    if config.deepspeed:
        deepspeed_comm_ready()
    dtypes = weight_dtypes(s.precision, s.lora, bool(config.deepspeed))
    device = load_device(config)
    model, decided, peft_config = policy_model(s, checkpoint, dtypes, device, bool(config.deepspeed))
    live = ref_mode == "live"
    ref_model = load_reference(s.ref_model or s.model, dtypes.frozen, device) if live else None
    common = dict(
        model=model, ref_model=ref_model, args=config, processing_class=processor, peft_config=peft_config
    )
    trainer = trl_trainer(s, loss, pairs, ref_mode, processor, max_text, common)
    if checkpoint and not s.lora and not config.deepspeed:
        trainer._load_from_checkpoint = lambda *a, **k: None  # weights already loaded by policy_model
    trainer.clipdpo_facts = {  # what the summary and the model card record
        "learning_rate": config.learning_rate,
        "vision_tower": decided["vision_tower"],
        "projector": decided["projector"],
        "dtype": str(dtypes.policy).removeprefix("torch."),
        "trainable_parameters": trainable_parameters(trainer.model),
    }
    return trainer, ref_mode, pairs


def policy_model(
    s: TrainSettings, checkpoint: str | None, dtypes: WeightDtypes, device: Any, deepspeed: bool
) -> tuple[Any, dict[str, Any], Any]:
    """(the policy, what parts.freeze decided, the peft config or None).

    Resuming: the policy's weights come from the checkpoint through from_pretrained, which maps LLaVA's
    key names back (transformers' Trainer loads the raw state dict and would silently skip every key).
    """
    from clipdpo_cli.train.lora import prepare_lora

    model = load_policy(checkpoint if checkpoint and not s.lora else s.model, dtypes.policy, device)
    decided = parts.freeze(model, s.train_vision_tower, train_projector(s))  # before TRL / DeepSpeed see it
    peft_config = prepare_lora(model, s, decided["trained_modules"], deepspeed) if s.lora else None
    return model, decided, peft_config


def trl_trainer(
    s: TrainSettings,
    loss: Loss,
    pairs: PairColumns,
    ref_mode: str,
    processor: Any,
    max_text: int | None,
    common: dict[str, Any],
) -> Any:
    """KTOTrainer over the pairs unpaired, or ClipdpoDPOTrainer over the pairs (`common`: model, ref_model,
    args, processing_class, peft_config)."""
    if loss.trainer == "kto":
        from datasets import Dataset
        from trl import KTOTrainer

        batch = common["args"].per_device_train_batch_size
        dataset = Dataset.from_dict(unpair(pairs, batch // 2, s.seed))
        kl = "kto" in loss.loss_type
        collator = VisionPairCollator(processor, max_text, unpaired=True, calculate_kl=kl)
        return KTOTrainer(train_dataset=dataset, data_collator=collator, **common)
    from clipdpo_cli.train.data import to_dataset
    from clipdpo_cli.train.dpo_trainer import clipdpo_dpo_trainer

    dataset = to_dataset(pairs, with_ref=ref_mode == "precomputed")
    return clipdpo_dpo_trainer()(
        train_dataset=dataset,
        data_collator=VisionPairCollator(processor, max_text),
        own_loss=loss.own_formula,
        precomputed_ref=ref_mode == "precomputed",
        **common,
    )


def trainable_parameters(model: Any) -> int:
    """Parameters the optimizer will update (their full count under ZeRO-3's partitioning)."""
    return sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters() if p.requires_grad)
