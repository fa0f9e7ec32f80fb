"""`clipdpo train --push-to-hub [--hub-model-id ID]`: the saved model folder on the Hugging Face Hub.

The options go to TRL/transformers as `push_to_hub` / `hub_model_id` (the Trainer creates the repository when
it starts, so a refused token fails before any step), with `hub_strategy="end"`: the Trainer pushes no
checkpoint on its own, clipdpo uploads the output folder once, after the model (merged LoRA or adapter),
processor and model card are saved, the way `Trainer.push_to_hub` does (checkpoint-N folders left out).
What cannot work is refused before any model loads: no token, or HF_HUB_OFFLINE set.
"""

from __future__ import annotations

import glob
import os
from typing import Any

from clipdpo_cli.io.errors import UsageError

IGNORED = ["_*", "checkpoint-*"]  # what Trainer.push_to_hub leaves out too


def hub_config(push_to_hub: bool, hub_model_id: str | None) -> dict[str, Any]:
    """The TRL config fields of the options (empty without --push-to-hub / --hub-model-id)."""
    fields: dict[str, Any] = {}
    if hub_model_id:
        fields["hub_model_id"] = hub_model_id
    if push_to_hub:
        fields.update(push_to_hub=True, hub_strategy="end")
    return fields


def check_hub(push_to_hub: bool, hub_model_id: str | None) -> None:
    """Refuse a push that cannot work, before any model is loaded."""
    if not push_to_hub:
        return  # --hub-model-id alone names the repository in the model card only
    from huggingface_hub import constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise UsageError(
            "--push-to-hub: HF_HUB_OFFLINE is set (unset it on a machine that can reach the Hub)"
        )
    if get_token() is None:
        raise UsageError("--push-to-hub needs a Hugging Face token: `hf auth login` or HF_TOKEN=...")
    if hub_model_id is not None and hub_model_id.count("/") > 1:
        raise UsageError(f"--hub-model-id '{hub_model_id}': expected NAME or OWNER/NAME")


def push_output(trainer: Any, output_dir: str, message: str) -> str | None:
    """Upload `output_dir` to the run's Hub repository (rank 0); its URL, None when not pushing."""
    args = trainer.args
    if not args.push_to_hub or not trainer.is_world_process_zero():
        return None
    from huggingface_hub import HfApi

    from clipdpo_cli.train.output_dir import MARKER, read_marker

    # only what the run wrote: not its record, nor what was in the folder before it (a SLURM log, notes)
    marker = read_marker(output_dir) or {"kept": []}
    kept = [glob.escape(name) for name in marker["kept"]]
    ignored = [*IGNORED, f"{MARKER}*", *(p for name in kept for p in (name, f"{name}/*"))]
    repo = trainer.hub_model_id or args.hub_model_id or os.path.basename(os.path.abspath(output_dir))
    commit = HfApi().upload_folder(
        repo_id=repo,
        folder_path=output_dir,
        commit_message=message,
        token=args.hub_token,
        revision=args.hub_revision,
        ignore_patterns=ignored,
    )
    return str(getattr(commit, "commit_url", repo))
