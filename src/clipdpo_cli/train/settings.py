"""`clipdpo train`'s settings, each declared once: a dataclass field with its option and TRL field.

In the style of TRL's own config dataclasses (one field, its help in the metadata), each `setting(...)` gives:

- the settings object's field and default (`TrainSettings`; Python callers build it directly),
- the `clipdpo train` option (commands/settings_options.py turns the metadata into the typer parameter:
  `--name-with-dashes`, the help with where the default comes from, the type, extra typer arguments),
- the TRL DPOConfig / KTOConfig fields it sets (`trl`; `to_trl` when the value is derived rather than copied),
  which are also the --config YAML fields a typed option wins over (`typed_fields`).

Adding a training option is one `setting(...)` line here (e.g. `max_grad_norm`); no other list names them.
Defaults are the paper's (Sec. 5, Table 5) where it gives one, `source` says where the others come from.
"""

import dataclasses
import enum
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.io.setting import declared, setting
from clipdpo_cli.models.device import HELP, Use, resolve_precision
from clipdpo_cli.models.generation_settings import CHAT_TEMPLATE_HELP
from clipdpo_cli.train.losses import Loss

ToTrl = Callable[[Any, "TrainSettings", Loss], dict[str, Any]]

PAPER = "the paper (Sec. 5)"
TABLE5 = "the paper (Table 5)"


class RefMode(str, enum.Enum):
    auto = "auto"
    live = "live"
    precomputed = "precomputed"


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def accumulation_steps(batch_size: int, per_device: int, processes: int) -> int:
    """Gradient accumulation that reaches at least the effective batch size (rounded up)."""
    if batch_size < 1 or per_device < 1:
        raise UsageError("--batch-size and --per-device-batch-size must be at least 1")
    return max(1, math.ceil(batch_size / (per_device * processes)))


def training_precision(precision: str) -> str:
    """'fp32', 'bf16' or 'fp16' for --precision: models.device's one resolver for `Use.training` (auto is
    bf16 on a GPU that has it, else fp32; unlike the weight dtype's auto it never picks fp16 by itself)."""
    return resolve_precision(precision, Use.training).value


FULL_LR = 5e-7  # the paper (Sec. 5); RLAIF-V's full fine-tune uses the same
LORA_LR = 1e-5  # RLAIF-V's LoRA DPO script (its full fine-tune: 5e-7); HA-DPO's LLaVA-1.5 LoRA uses 2e-4


def learning_rate(s: "TrainSettings") -> float:
    """--learning-rate, else the default of the kind of run: FULL_LR, or LORA_LR with --lora (an adapter whose
    B matrices start at zero barely moves at the full fine-tune rate: docs/training.md)."""
    if s.learning_rate is not None:
        if s.learning_rate <= 0:
            raise UsageError("--learning-rate must be positive")
        return s.learning_rate
    return LORA_LR if s.lora else FULL_LR


def train_projector(s: "TrainSettings") -> bool:
    """--train-projector / --freeze-projector, else trained in full fine-tuning and frozen with --lora."""
    return (not s.lora) if s.train_projector is None else s.train_projector


def _loss_type(value: str, s: "TrainSettings", loss: Loss) -> dict[str, Any]:
    return {"loss_type": loss.trl_loss_type}


def _label_smoothing(value: float | None, s: "TrainSettings", loss: Loss) -> dict[str, Any]:
    """Only the DPO config has it; unset (None), the loss's own default or TRL's (0) applies."""
    if value is not None and not 0.0 <= value < 0.5:
        raise UsageError("--label-smoothing must be in [0, 0.5)")
    return {"label_smoothing": value} if loss.trainer == "dpo" else {}


def _epochs(value: float, s: "TrainSettings", loss: Loss) -> dict[str, Any]:
    return {"num_train_epochs": 1.0 if s.max_steps > 0 else value}  # --max-steps decides the length


def _accumulation(value: int, s: "TrainSettings", loss: Loss) -> dict[str, Any]:
    return {"gradient_accumulation_steps": accumulation_steps(value, s.per_device_batch_size, world_size())}


def _mixed_precision(value: str, s: "TrainSettings", loss: Loss) -> dict[str, Any]:
    precision = training_precision(value)
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def _trackers(value: str, s: "TrainSettings", loss: Loss) -> dict[str, Any]:
    return {"report_to": value.split(",")}  # checked by train.reporting before any model loads


def _hub(value: bool, s: "TrainSettings", loss: Loss) -> dict[str, Any]:
    from clipdpo_cli.train.publish import hub_config

    return hub_config(value, None)  # hub_model_id is its own setting


def _max_length(value: str) -> int | None:
    from clipdpo_cli.io.values import optional_int

    return optional_int(value, "--max-length")


@dataclass
class TrainSettings:
    """Everything `clipdpo train` needs; defaults are the paper's (Sec. 5) where it gives one."""

    pairs: str
    model: str = setting(
        help="Model to start from: Hub id or local directory (also the reference).",
        flags=("--model", "-m"),
        cli_default=None,  # required, unless --config names it (checked by the command)
    )
    output_dir: str = setting(help="Where the trained model, processor and checkpoints go.", cli_default=None)
    loss: str = setting(
        "dpo",
        "dpo | ipo | slic | cdpo | kto (train/losses.py), or any TRL DPO loss_type by name (e.g. robust).",
        trl=("loss_type",),
        to_trl=_loss_type,
        source="the paper (Eq. 1)",
    )
    beta: float = setting(0.1, "KL strength beta (IPO: tau).", trl=("beta",), source=TABLE5)
    label_smoothing: float | None = setting(
        None,
        "Label-noise rate e for cdpo (default 0.1, the paper's Table 5) / robust / exo_pair.",
        trl=("label_smoothing",),
        to_trl=_label_smoothing,
    )
    learning_rate: float | None = setting(
        None,
        f"Peak AdamW learning rate [default: {FULL_LR:g}, the paper's (Sec. 5); with --lora {LORA_LR:g}, "
        "RLAIF-V's LoRA rate].",
        trl=("learning_rate",),
        to_trl=lambda v, s, loss: {"learning_rate": learning_rate(s)},
        show_default=False,
    )
    epochs: float = setting(
        1.0, "Epochs over the pairs.", trl=("num_train_epochs",), to_trl=_epochs, source=PAPER
    )
    max_steps: int = setting(
        -1, "Stop after this many optimizer steps (overrides --epochs).", trl=("max_steps",)
    )
    batch_size: int = setting(
        256,
        "Effective batch: per-device x processes x accumulation.",
        trl=("gradient_accumulation_steps",),
        to_trl=_accumulation,
        source=PAPER,
    )
    per_device_batch_size: int = setting(
        8,
        "Pairs per process per forward pass.",
        trl=("per_device_train_batch_size", "gradient_accumulation_steps"),
        to_trl=lambda v, s, loss: {"per_device_train_batch_size": v},
    )
    warmup_ratio: float = setting(
        0.01, "Linear warm-up, fraction of steps.", trl=("warmup_steps",), source=PAPER
    )  # a float in [0, 1) is a ratio of the total steps (transformers 5)
    weight_decay: float = setting(0.0, "AdamW weight decay.", trl=("weight_decay",), source=PAPER)
    lr_scheduler: str = setting(
        "cosine", "LR schedule after warm-up, down to 0.", trl=("lr_scheduler_type",), source=PAPER
    )
    max_grad_norm: float = setting(
        1.0,
        "Clip the gradient norm to this (0: no clipping).",
        trl=("max_grad_norm",),
        source="transformers (the paper gives none)",
    )
    max_length: int | None = setting(
        None,
        "Cut prompt+answer to this many TEXT tokens; image tokens are never cut.",
        cli_type=str,
        cli_default="none",
        parse=_max_length,
    )
    precision: str = setting(
        "auto",
        HELP[Use.training],
        trl=("bf16", "fp16"),
        to_trl=_mixed_precision,
    )
    gradient_checkpointing: bool = setting(
        True,
        "Trade compute for memory.",
        trl=("gradient_checkpointing",),
        flags=("--gradient-checkpointing/--no-gradient-checkpointing",),
    )
    lora: bool = setting(
        False, "Train a LoRA adapter (peft), merged into the saved model.", flags=("--lora",)
    )
    train_vision_tower: bool = setting(
        False,
        "Train the vision encoder too (frozen by default, as in the paper and LLaVA).",
        flags=("--train-vision-tower",),
        source="the paper (Sec. 5: 'the frozen vision encoder')",
    )
    train_projector: bool | None = setting(
        None,
        "Train the vision-language projector [default: trained in full fine-tuning (the paper, LLaVA), "
        "frozen with --lora (the adapter alone, LLaMA-Factory)].",
        flags=("--train-projector/--freeze-projector",),
        show_default=False,
    )
    lora_r: int = setting(16, "LoRA rank.")
    lora_alpha: int = setting(32, "LoRA alpha.")
    seed: int = setting(0, "Seed for shuffling, dropout and init.", trl=("seed",))
    report_to: str = setting(
        "none",
        "Metrics besides stderr: none, tensorboard, wandb, or a,b (checked first).",
        trl=("report_to",),
        to_trl=_trackers,
    )
    logging_steps: int = setting(10, "Log metrics every N optimizer steps.", trl=("logging_steps",))
    save_steps: int = setting(500, "Save a checkpoint every N optimizer steps.", trl=("save_steps",))
    resume_from_checkpoint: str | None = setting(
        None, "Continue from a checkpoint folder in --output-dir ('last' for the latest)."
    )
    deepspeed: str | None = setting(
        None, "DeepSpeed config: zero2 / zero3 (shipped in clipdpo) or a JSON file.", trl=("deepspeed",)
    )
    ref_logps: str = setting(
        "auto",
        "Reference log-probs: precomputed (from the pairs, by `clipdpo ref-logps`; no reference model "
        "in memory), live (a frozen reference copy), auto (precomputed when every pair has them).",
        cli_type=RefMode,
        cli_default=RefMode.auto,
        parse=lambda mode: mode.value,
    )
    ref_model: str | None = setting(None, "Reference model when not the starting --model.")
    image_root: str | None = setting(
        None, "Folder that relative `image` paths are relative to; default: $CLIPDPO_IMAGE_ROOT."
    )
    skip_bad: bool = False  # --on-error skip (the command's own option, shared with --dry-run)
    overwrite: bool = False  # --overwrite: replace the clipdpo run in output_dir (train/output_dir.py)
    num_workers: int = setting(
        0, "DataLoader workers that open and process images.", trl=("dataloader_num_workers",), cli_default=2
    )  # a Python caller decodes in its own process unless it asks; the command uses 2 workers
    chat_template: str | None = setting(None, CHAT_TEMPLATE_HELP)  # saved with the model
    max_pixels: int | None = setting(None, shared=True)  # cap on a dynamic-resolution processor's pixels
    quiet: bool = setting(False, shared=True)
    progress_every: float = setting(60.0, shared=True)  # seconds between progress lines off a terminal
    save_adapter_only: bool = setting(
        False, "With --lora: save the adapter alone, not merged.", flags=("--save-adapter-only",)
    )
    push_to_hub: bool = setting(
        False,
        "Upload the saved model folder to the Hugging Face Hub.",
        flags=("--push-to-hub",),
        trl=("push_to_hub", "hub_strategy"),
        to_trl=_hub,
    )
    hub_model_id: str | None = setting(
        None, "Hub repository (NAME or OWNER/NAME; default: --output-dir's name).", trl=("hub_model_id",)
    )
    base_model_id: str | None = setting(
        None, "The model card's base_model: the Hub id --model came from (default: read from its config)."
    )
    license: str | None = setting(None, "The model card's license (default: the base model card's).")
    dataset_id: str | None = setting(None, "The model card's datasets: Hub dataset id(s), comma-separated.")
    extra: dict[str, Any] = field(default_factory=dict)  # --config YAML: more DPOConfig/KTOConfig fields
    explicit: frozenset[str] = frozenset()  # config fields the user set on the command line (win over extra)


# Config fields that name a token but hold none (TRL's padding token string).
NOT_SECRET = frozenset({"pad_token"})


def secret_fields(data: dict[str, Any], prefix: str = "") -> list[str]:
    """The fields of a --config mapping (nested ones too: model_init_kwargs) that hold a credential:
    hub_token, any *_token, api keys, secrets, passwords."""
    found = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found += secret_fields(value, f"{name}.")
        elif (
            isinstance(key, str)
            and key.lower() not in NOT_SECRET
            and re.search(r"(^|_)(token|api_?key|secret|password|passwd|credentials?)$", key.lower())
            and value not in (None, "")
        ):
            found.append(name)
    return found


def check_no_secrets(extra: dict[str, Any], where: str = "--config") -> None:
    """Refuse credentials among the extra config fields: TrainingArguments keep them, and training_args.bin
    (a pickle of them, in the output folder) carries them in plain text to the Hub with --push-to-hub."""
    secrets = secret_fields(extra)
    if secrets:
        raise UsageError(
            f"{where}: {', '.join(secrets)} would be saved in plain text in the output folder "
            "(training_args.bin, uploaded by --push-to-hub): remove it and log in instead "
            "(`hf auth login` or HF_TOKEN)"
        )


def options() -> list[dataclasses.Field[Any]]:
    """The settings that are `clipdpo train` options, in declaration order."""
    return declared(TrainSettings)


def typed_fields(names: set[str]) -> frozenset[str]:
    """The TRL config fields decided by these options (typed on the command line: they win over --config)."""
    return frozenset(trl for f in options() if f.name in names for trl in f.metadata["trl"])


# TRL config fields that are not options: fixed by how clipdpo trains.
FIXED: Mapping[str, Any] = {
    "optim": "adamw_torch",
    "remove_unused_columns": False,  # the collator needs the raw columns (image, texts, ref log-probs)
}


def config_kwargs(s: TrainSettings, loss: Loss) -> dict[str, Any]:
    """TRL config fields from the settings; --config YAML fields fill in, command-line options win.

    An option left at None leaves the field to the loss's default (`Loss.defaults`, e.g. cDPO's label
    smoothing), else to TRL's. TRL's own max_length stays None: `--max-length` is applied by our collator,
    row by row, to text tokens only (TRL's cuts a whole batch at one length, image tokens included).
    """
    import torch

    derived: dict[str, Any] = {"output_dir": s.output_dir, **FIXED}
    for f in options():
        if f.metadata["trl"]:
            value = getattr(s, f.name)
            convert = f.metadata["to_trl"]
            derived.update(convert(value, s, loss) if convert else {f.metadata["trl"][0]: value})
    for key, value in loss.defaults.items():
        if derived.get(key) is None:
            derived[key] = value
    derived = {k: v for k, v in derived.items() if v is not None}  # unset: TRL's default
    derived.update(max_length=None, use_cpu=not torch.cuda.is_available())
    derived["disable_tqdm"] = not sys.stderr.isatty()
    kwargs = {k: v for k, v in derived.items() if k not in s.extra or k in s.explicit}
    for key, value in s.extra.items():
        if key not in s.explicit:
            kwargs[key] = value
    return kwargs
