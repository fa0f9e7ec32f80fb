"""DPO (and KTO) fine-tuning of an LVLM on pair records with TRL, under whatever accelerate launched us with.

`run_training(settings)` is the whole `clipdpo train` minus option parsing: it validates the pairs, builds the
TRL config (the paper's hyperparameters by default), loads the policy and, unless reference log-probs were
precomputed, a reference copy from the same directory, trains, and saves model + processor to the output
directory so that `clipdpo caption --model DIR` loads it like any other model.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clipdpo_cli.io.errors import InputError, UsageError
from clipdpo_cli.train import model_card, parts
from clipdpo_cli.train.data import PairColumns, VisionPairCollator, collect_pairs, unpair
from clipdpo_cli.train.losses import Loss, resolve_loss
from clipdpo_cli.train.settings import TrainSettings, check_no_secrets, config_kwargs, train_projector

REF_MODES = ("auto", "live", "precomputed")


@dataclass
class TrainResult:
    output_dir: str
    pairs: int
    skipped: dict[str, int]
    steps: int
    log_history: list[dict[str, Any]]
    reference: str  # "live", "precomputed" or "adapter"
    peak_gpu_memory_gb: float | None = None  # this process's peak allocated CUDA memory
    median_step_seconds: float | None = None  # optimizer steps after the first (warm-up) one
    facts: dict[str, Any] | None = None  # lr, vision tower / projector, dtype, trainable parameters


def log(message: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"clipdpo train: {message}", file=sys.stderr, flush=True)


def log_unless(quiet: bool, message: str) -> None:
    """A progress line (the run's header, where the model went), which --quiet leaves out."""
    if not quiet:
        log(message)


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


@dataclass(frozen=True)
class WeightDtypes:
    """The dtypes a run loads its weights in: `policy`, the model the optimizer updates (fp32 master weights
    outside DeepSpeed, which keeps its own; the LoRA base, which no optimizer updates, in the compute
    precision), and `frozen`, every model no optimizer updates (the live reference, `ref-logps`)."""

    compute: Any
    policy: Any
    frozen: Any


def weight_dtypes(precision: str, lora: bool = False, deepspeed: bool = False) -> WeightDtypes:
    """From --precision (training's: auto is bf16 on a GPU that has it, fp32 on CPU: CPU runs stay fp32)."""
    import torch

    from clipdpo_cli.models.device import torch_dtype
    from clipdpo_cli.train.settings import training_precision

    compute = torch_dtype(training_precision(precision))
    policy = compute if (lora or deepspeed) else torch.float32
    return WeightDtypes(compute=compute, policy=policy, frozen=compute)


def load_device(config: Any) -> Any:
    """Where this process's models load straight to: its GPU (a DDP rank's own), or None (the CPU; under
    DeepSpeed, which places and partitions them itself)."""
    if config.deepspeed:
        return None
    device = config.device
    return device if device.type == "cuda" else None


def load_policy(name: str, dtype: Any = None, device: Any = None) -> Any:
    """The LVLM to train (by default fp32: master weights), by the same name rules as every other command;
    loaded straight to `device` when given (no CPU copy first)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from clipdpo_cli.models.hub import load_pretrained, resolve_name

    placed = {"device_map": device} if device is not None else {}
    model = load_pretrained(
        AutoModelForImageTextToText.from_pretrained,
        resolve_name(name, "model"),
        "model",
        dtype=dtype or torch.float32,
        **placed,
    )
    if not getattr(model.config, "_name_or_path", ""):
        raise InputError(
            f"model '{name}' has no name or path to reload the reference from; save it to a directory"
        )
    return model


def load_reference(name: str, dtype: Any, device: Any = None) -> Any:
    """A frozen LVLM (the live reference, `ref-logps`'s model): in `dtype`, requires_grad off, eval mode."""
    from transformers import AutoModelForImageTextToText

    from clipdpo_cli.models.hub import load_frozen, resolve_name

    path = resolve_name(name, "model")
    return load_frozen(AutoModelForImageTextToText.from_pretrained, path, "model", dtype, device)


def load_processor(name: str, chat_template: str | None = None, max_pixels: int | None = None) -> Any:
    """The model's processor (as every LVLM command loads it), with a pad token for batching."""
    from clipdpo_cli.models.lvlm import load_lvlm_processor

    processor = load_lvlm_processor(
        name, chat_template, max_pixels, why=" (it is saved with the trained model)"
    )
    tokenizer = processor.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return processor


def text_max_length(max_text: int | None) -> int | None:
    """`--max-length`: text tokens per row (each row's image tokens come on top and are never cut)."""
    if max_text is not None and max_text < 1:
        raise UsageError("--max-length must be at least 1 (or 'none')")
    return max_text


@contextlib.contextmanager
def no_reference_load() -> Iterator[None]:
    """While DPOTrainer initialises, make its 'load the reference from the policy's path' step a no-op.

    TRL refuses precompute_ref_log_probs for vision data and otherwise always loads a reference copy. With
    reference log-probs already in the batches we need neither: this keeps the copy from ever being loaded.
    """
    import trl.trainer.dpo_trainer as dpo_module

    original = dpo_module.create_model_from_path
    dpo_module.create_model_from_path = lambda *a, **k: None
    try:
        yield
    finally:
        dpo_module.create_model_from_path = original


def clipdpo_dpo_trainer() -> type:
    """DPOTrainer with the losses TRL does not compute (a Loss's own_formula: cDPO) and training on
    precomputed reference log-probs of vision data."""
    import torch
    from trl import DPOTrainer
    from trl.models.utils import disable_gradient_checkpointing
    from trl.trainer.utils import use_adapter

    from clipdpo_cli.models.logps import completion_logps, split_pairs

    class ClipdpoDPOTrainer(DPOTrainer):
        def __init__(
            self, *args: Any, own_loss: Any = None, precomputed_ref: bool = False, **kwargs: Any
        ) -> None:
            self.own_loss = own_loss  # per-pair loss(delta, beta, label_smoothing), or None: TRL's
            if precomputed_ref:
                if kwargs.get("ref_model") is not None:
                    raise ValueError(
                        "precomputed reference log-probs and a reference model exclude each other"
                    )
                with no_reference_load():
                    super().__init__(*args, **kwargs)
                if self.ref_model is not None:  # pragma: no cover - would mean TRL changed how it loads it
                    raise RuntimeError("a reference model was loaded although log-probs are precomputed")
                self.precompute_ref_logps = True  # DPOTrainer then reads ref_*_logps from each batch
            else:
                super().__init__(*args, **kwargs)

        def reference_logps(self, inputs: dict[str, Any]) -> tuple[Any, Any]:
            if self.precompute_ref_logps:
                return inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
            from accelerate.utils import is_peft_model

            with (
                torch.no_grad(),
                disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs),
            ):
                if is_peft_model(self.model) and self.ref_model is None:
                    unwrapped = self.accelerator.unwrap_model(self.model)
                    name = "ref" if "ref" in unwrapped.peft_config else None
                    with use_adapter(unwrapped, adapter_name=name):
                        return split_pairs(completion_logps(self.model, inputs))
                return split_pairs(completion_logps(self.ref_model, inputs))

        def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
            if self.own_loss is None:
                return super()._compute_loss(model, inputs, return_outputs)
            mode = "train" if self.model.training else "eval"
            chosen, rejected = split_pairs(completion_logps(model, inputs))
            ref_chosen, ref_rejected = self.reference_logps(inputs)
            chosen_ratio, rejected_ratio = chosen - ref_chosen, rejected - ref_rejected
            loss = self.own_loss(chosen_ratio - rejected_ratio, self.beta, self.label_smoothing).mean()
            gather = self.accelerator.gather
            rewards_c, rewards_r = self.beta * chosen_ratio.detach(), self.beta * rejected_ratio.detach()
            metrics = self._metrics[mode]
            metrics["rewards/chosen"].append(gather(rewards_c).mean().item())
            metrics["rewards/rejected"].append(gather(rewards_r).mean().item())
            metrics["rewards/accuracies"].append(gather((rewards_c > rewards_r).float()).mean().item())
            metrics["rewards/margins"].append(gather(rewards_c - rewards_r).mean().item())
            metrics["logps/chosen"].append(gather(chosen.detach()).mean().item())
            metrics["logps/rejected"].append(gather(rejected.detach()).mean().item())
            return (loss, None) if return_outputs else loss

    return ClipdpoDPOTrainer


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


def build_trainer(s: TrainSettings, pairs: PairColumns | None = None) -> tuple[Any, str, PairColumns]:
    """The configured TRL trainer (not yet trained), the reference mode and the validated pairs."""
    from clipdpo_cli.io.jsonl import read_jsonl
    from clipdpo_cli.train.data import to_dataset

    loss = resolve_loss(s.loss)
    check_settings(s, loss)
    if pairs is None:
        pairs = collect_pairs(read_jsonl(s.pairs), s.image_root, skip_bad=s.skip_bad)
    if not len(pairs):
        raise InputError(f"{s.pairs}: no usable pairs")
    ref_mode = reference_mode(s, pairs, loss)
    processor = load_processor(s.model, s.chat_template, s.max_pixels)
    max_text = text_max_length(s.max_length)
    config = make_config(s, loss)  # before loading the model (ZeRO-3 init)
    if config.deepspeed:
        deepspeed_comm_ready()
    checkpoint = resolve_checkpoint(s.resume_from_checkpoint, s.output_dir)
    # Resuming: the policy's weights come from the checkpoint through from_pretrained, which maps LLaVA's
    # key names back (transformers' Trainer loads the raw state dict and would silently skip every key).
    dtypes = weight_dtypes(s.precision, s.lora, bool(config.deepspeed))
    device = load_device(config)
    model = load_policy(checkpoint if checkpoint and not s.lora else s.model, dtypes.policy, device)
    decided = parts.freeze(model, s.train_vision_tower, train_projector(s))  # before TRL / DeepSpeed see it
    peft_config = None
    if s.lora:
        from peft import LoraConfig

        trained = decided["trained_modules"]
        if (s.train_vision_tower or train_projector(s)) and not trained:
            raise InputError(f"--lora: cannot find the vision parts of {type(model).__name__} to train")
        if not config.deepspeed:  # parts trained in full keep fp32 master weights (DeepSpeed keeps its own)
            for name in trained:
                model.get_submodule(name).float()
        peft_config = LoraConfig(
            r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=0.05, task_type="CAUSAL_LM",
            target_modules=lora_targets(model), modules_to_save=trained or None,
        )  # fmt: skip
    live = ref_mode == "live"
    ref_model = load_reference(s.ref_model or s.model, dtypes.frozen, device) if live else None
    common = dict(
        model=model, ref_model=ref_model, args=config, processing_class=processor, peft_config=peft_config
    )
    if loss.trainer == "kto":
        from datasets import Dataset
        from trl import KTOTrainer

        dataset = Dataset.from_dict(unpair(pairs, config.per_device_train_batch_size // 2, s.seed))
        collator = VisionPairCollator(
            processor, max_text, unpaired=True, calculate_kl="kto" in loss.loss_type
        )
        trainer = KTOTrainer(train_dataset=dataset, data_collator=collator, **common)
    else:
        dataset = to_dataset(pairs, with_ref=ref_mode == "precomputed")
        collator = VisionPairCollator(processor, max_text)
        trainer = clipdpo_dpo_trainer()(
            train_dataset=dataset,
            data_collator=collator,
            own_loss=loss.own_formula,
            precomputed_ref=ref_mode == "precomputed",
            **common,
        )
    if checkpoint and not s.lora and not config.deepspeed:
        trainer._load_from_checkpoint = lambda *a, **k: None  # weights already loaded above
    trainer.clipdpo_facts = {  # what the summary and the model card record
        "learning_rate": config.learning_rate,
        "vision_tower": decided["vision_tower"],
        "projector": decided["projector"],
        "dtype": str(dtypes.policy).removeprefix("torch."),
        "trainable_parameters": trainable_parameters(trainer.model),
    }
    return trainer, ref_mode, pairs


def trainable_parameters(model: Any) -> int:
    """Parameters the optimizer will update (their full count under ZeRO-3's partitioning)."""
    return sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters() if p.requires_grad)


LORA_LEAVES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_targets(model: Any) -> str:
    """A peft target regex: the attention and MLP projections of the model's language model only.

    The language model is what `get_decoder()` returns, wherever the family keeps it (LLaVA, Qwen2-VL and
    PaliGemma: model.language_model; Idefics3 / SmolVLM: model.text_model); the vision tower and the
    projector are left out. No projection found is a one-line error naming the linear modules there are.
    """
    import re

    import torch

    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    prefix = next((name for name, module in model.named_modules() if module is decoder), None)
    if not prefix:
        raise InputError(f"--lora: cannot find the language model of {type(model).__name__}")
    linear = [n for n, m in decoder.named_modules() if isinstance(m, torch.nn.Linear)]
    found = sorted({n.rsplit(".", 1)[-1] for n in linear})
    leaves = [leaf for leaf in LORA_LEAVES if leaf in found]
    if not leaves:
        raise InputError(
            f"--lora: no {'/'.join(LORA_LEAVES)} modules in {prefix} ({type(decoder).__name__}); "
            f"its linear modules: {', '.join(found) or 'none'}"
        )
    return rf"{re.escape(prefix)}\..*\.({'|'.join(leaves)})"


def deepspeed_comm_ready() -> None:
    """Give DeepSpeed's communication layer the process group accelerate already started.

    On CPU, accelerate starts torch.distributed itself (gloo) and DeepSpeed's own layer stays uninitialised,
    zero.Init (run by from_pretrained under ZeRO-3) would size its batch for a world of 1 process.
    """
    import deepspeed

    deepspeed.init_distributed(auto_mpi_discovery=False)


def resolve_checkpoint(value: str | None, output_dir: str) -> str | None:
    """--resume-from-checkpoint: a folder, or 'last' for the newest checkpoint-N in the output directory."""
    if value is None:
        return None
    if value == "last":
        from transformers.trainer_utils import get_last_checkpoint

        found = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
        if found is None:
            raise InputError(f"--resume-from-checkpoint last: no checkpoint-N folder in {output_dir}")
        return found
    if not os.path.isdir(value):
        raise InputError(f"--resume-from-checkpoint: folder not found: {value}")
    return value


def finished_at(checkpoint: str, s: TrainSettings) -> tuple[int, list[dict[str, Any]]] | None:
    """(step, log history) when the checkpoint already reached the run's last step, else None.

    The last step is --max-steps, or without it the step count the checkpoint's run planned (its epochs).
    """
    import json

    path = os.path.join(checkpoint, "trainer_state.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as fh:
        state = json.load(fh)
    step = int(state.get("global_step", 0))
    target = s.max_steps if s.max_steps > 0 else int(state.get("max_steps", 0))
    return (step, list(state.get("log_history", []))) if target and step >= target else None


def prepare_output(trainer: Any, s: TrainSettings) -> None:
    """Once the model loaded and the trainer is configured (every check passed): the main process checks
    the folder again, removes the previous run (--overwrite) and records this one; the others wait."""
    from clipdpo_cli.train.output_dir import output_plan, prepare_output_dir

    if trainer.accelerator.is_main_process:
        prepare_output_dir(output_plan(s))
    trainer.accelerator.wait_for_everyone()


def run_training(s: TrainSettings) -> TrainResult:
    checkpoint = resolve_checkpoint(s.resume_from_checkpoint, s.output_dir)
    done = finished_at(checkpoint, s) if checkpoint else None
    if done is not None:  # resuming a finished run: nothing to train, the saved model is left as it is
        log(f"{checkpoint} is at step {done[0]}, the run's last: nothing to train")
        return TrainResult(s.output_dir, 0, {}, done[0], done[1], reference="none (nothing trained)")
    trainer, ref_mode, pairs = build_trainer(s)
    prepare_output(trainer, s)
    args = trainer.args
    effective = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    log_unless(
        s.quiet,
        f"{len(pairs)} pairs, loss {s.loss}, beta {args.beta}, lr {args.learning_rate}, "
        f"effective batch {effective} "
        f"({args.per_device_train_batch_size} x {args.gradient_accumulation_steps} accumulation x "
        f"{args.world_size} processes), reference: {ref_mode}",
    )
    facts = trainer.clipdpo_facts
    log_unless(
        s.quiet,
        f"vision tower {facts['vision_tower']}, projector {facts['projector']}, "
        f"{'LoRA base' if s.lora else 'trained weights'} in {facts['dtype']}, "
        f"{facts['trainable_parameters']:,} trainable parameters",
    )
    quiet_callbacks(trainer, s.quiet)
    from clipdpo_cli.train.progress_callback import train_callbacks

    for callback in train_callbacks(s.quiet, s.progress_every):
        trainer.add_callback(callback)
    card = model_card.install(trainer, model_card.run_facts(s, pairs, ref_mode, effective, facts))
    timer = step_timer()
    trainer.add_callback(timer)
    resume = resolve_checkpoint(s.resume_from_checkpoint, s.output_dir)
    try:
        trainer.train(resume_from_checkpoint=resume)
    except ValueError as exc:
        if "max_length" in str(exc) and "image" in str(exc):
            raise InputError(str(exc)) from None
        raise
    merge = s.lora and not s.save_adapter_only
    save_model(trainer, s.output_dir, merge_lora=merge, base_id=card.base_model_id)
    model_card.finish(trainer, card, s.output_dir)  # README.md, then the --push-to-hub upload
    result = TrainResult(
        output_dir=s.output_dir,
        pairs=len(pairs),
        skipped=pairs.skipped,
        steps=trainer.state.global_step,
        log_history=list(trainer.state.log_history),
        reference=ref_mode,
        peak_gpu_memory_gb=peak_gpu_memory(),
        median_step_seconds=timer.median(),
        facts=facts,
    )
    # Close trackers and the process group in order: left to interpreter exit, the gloo threads of a
    # multi-process run can abort the process after a successful save ("terminate called without an
    # active exception", seen once with 2-process ZeRO-3 on CPU).
    trainer.accelerator.end_training()
    return result


def step_timer() -> Any:
    """A trainer callback timing each optimizer step; `median()` leaves out the first (warm-up) step."""
    import statistics
    import time

    from transformers.trainer_callback import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.started: float | None = None

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.started is not None:
                self.seconds.append(time.perf_counter() - self.started)

        def median(self) -> float | None:
            timed = self.seconds[1:] or self.seconds
            return round(statistics.median(timed), 4) if timed else None

    return StepTimer()


def peak_gpu_memory() -> float | None:
    """The most CUDA memory this process had allocated (GB), None without a GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def save_model(trainer: Any, output_dir: str, merge_lora: bool = False, base_id: str | None = None) -> None:
    """Model + processor in `output_dir`, loadable by `--model DIR` (a LoRA adapter merged in, or alone).

    An adapter saved alone names its base by `base_id` (the Hub id the card names) when known, not by the
    local folder it was loaded from, which would not load elsewhere and would be uploaded by --push-to-hub.
    """
    from accelerate.utils import is_peft_model

    model = trainer.accelerator.unwrap_model(trainer.model)
    if not merge_lora and base_id and is_peft_model(model):
        for config in model.peft_config.values():
            config.base_model_name_or_path = base_id
    if merge_lora and is_peft_model(model):
        trainer.accelerator.wait_for_everyone()
        with gathered(model):  # ZeRO-3: every process gathers the partitioned weights, rank 0 merges them
            if trainer.accelerator.is_main_process:
                merged = model.merge_and_unload()
                merged.save_pretrained(output_dir)
    else:
        trainer.save_model(output_dir, _internal_call=True)  # --push-to-hub uploads once, after the card
    if trainer.accelerator.is_main_process:
        trainer.processing_class.save_pretrained(output_dir)
    trainer.accelerator.wait_for_everyone()


@contextlib.contextmanager
def gathered(model: Any) -> Iterator[None]:
    """Under ZeRO-3, the model's full weights on every process meanwhile (their partitions are restored on
    exit, changes discarded: TRL merges adapters the same way before syncing weights); else nothing.

    Without it rank 0 would merge the adapter into the empty placeholders ZeRO-3 leaves in each parameter.
    """
    from transformers.integrations import is_deepspeed_zero3_enabled

    if not is_deepspeed_zero3_enabled():
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        yield


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to file descriptor 1 to stderr meanwhile (loggers hold sys.stdout itself)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def quiet_callbacks(trainer: Any, quiet: bool) -> None:
    """Metrics as one compact line per log on stderr (rank 0); stdout stays for the JSON summary."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    class StderrLog(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
        ) -> None:
            if not state.is_world_process_zero or not logs:
                return
            keys = ("loss", "rewards/margins", "rewards/accuracies", "learning_rate", "train_runtime")
            shown = ", ".join(f"{k} {logs[k]:.4g}" for k in keys if isinstance(logs.get(k), (int, float)))
            log(f"step {state.global_step}/{state.max_steps}: {shown}")

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if not quiet:
        trainer.add_callback(StderrLog())


SUMMARY_METRICS = ("loss", "rewards/margins", "rewards/accuracies")
RUN_FACTS = ("learning_rate", "vision_tower", "projector", "dtype", "trainable_parameters")  # None: untrained
RUN_FIGURES = ("train_loss", "train_runtime", "train_samples_per_second")


def final_metrics(history: list[dict[str, Any]]) -> dict[str, Any]:
    """First and last logged loss / reward margin / reward accuracy, and the run's own train_* figures.

    Always the same keys: a figure the run did not log (a loss without reward figures; a finished run
    resumed, which trains nothing) is None. The last step is always logged (progress_callback.LogLastStep).
    """
    logged = [h for h in history if "loss" in h]
    out: dict[str, Any] = {}
    for key in SUMMARY_METRICS:
        values = [h[key] for h in logged if key in h]
        out[f"first_{key}"] = values[0] if values else None
        out[f"last_{key}"] = values[-1] if values else None
    for key in RUN_FIGURES:
        out[key] = next((h[key] for h in reversed(history) if key in h), None)
    return out


def summary(result: TrainResult, quiet: bool = False) -> None:
    """The JSON summary on stdout (rank 0) and in OUTPUT_DIR/train_summary.json."""
    import json

    if int(os.environ.get("RANK", "0")) != 0:
        return
    data = {
        "output_dir": result.output_dir,
        "pairs": result.pairs,
        "skipped": result.skipped,
        "steps": result.steps,
        "reference": result.reference,
        "peak_gpu_memory_gb": result.peak_gpu_memory_gb,
        "median_step_seconds": result.median_step_seconds,
        **{key: (result.facts or {}).get(key) for key in RUN_FACTS},
        **final_metrics(result.log_history),
    }
    with open(os.path.join(result.output_dir, "train_summary.json"), "w") as fh:
        json.dump({**data, "log_history": result.log_history}, fh, indent=1)
    from clipdpo_cli.train.output_dir import finish_output_dir

    finish_output_dir(result.output_dir)  # the run's marker lists what it wrote
    print(json.dumps(data), flush=True)
    log_unless(quiet, f"saved to {result.output_dir} ({result.steps} steps)")
