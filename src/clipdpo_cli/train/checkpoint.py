"""What a run resumes from (--resume-from-checkpoint) and what it leaves: the model and processor saved so
that `--model OUTPUT_DIR` loads them (a LoRA adapter merged in, or alone)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from clipdpo_cli.io.errors import InputError
from clipdpo_cli.train.settings import TrainSettings


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
