"""`--output-dir` of `clipdpo train`: never train over another run's model or checkpoints by accident.

A folder that already holds what a run writes (a model, an adapter, checkpoint-N folders, train_summary.json)
is refused unless `--overwrite` (which removes those, so `--resume-from-checkpoint last` cannot later pick a
checkpoint of the old run) or `--resume-from-checkpoint` (continuing that run is the point). Other files in
the folder (a SLURM log, notes) are neither a reason to refuse nor removed.
"""

from __future__ import annotations

import os
import re
import shutil

from clipdpo_cli.io.errors import UsageError

# What a run leaves in its output folder (the model and processor files, an adapter, the summary, the card).
RUN_FILE = re.compile(
    r"^(config\.json|generation_config\.json|model(-\d+-of-\d+)?\.safetensors|model\.safetensors\.index\.json|"
    r"pytorch_model.*\.bin|adapter_model\.safetensors|adapter_config\.json|train_summary\.json|"
    r"training_args\.bin|README\.md|processor_config\.json|preprocessor_config\.json|tokenizer.*\.json|"
    r"special_tokens_map\.json|chat_template\.(jinja|json)|vocab\.json|merges\.txt|tokenizer\.model)$"
)
RUN_FOLDER = re.compile(r"^(checkpoint-\d+|runs)$")  # checkpoints, TensorBoard event files


def previous_run(output_dir: str) -> list[str]:
    """The names in `output_dir` that a training run wrote (sorted; empty for a new or unrelated folder)."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for entry in os.scandir(output_dir):
        if (entry.is_dir() and RUN_FOLDER.match(entry.name)) or (
            entry.is_file() and RUN_FILE.match(entry.name)
        ):
            found.append(entry.name)
    return sorted(found)


def check_output_dir(output_dir: str, overwrite: bool, resume_from_checkpoint: str | None) -> None:
    """Refuse a folder that holds another run unless --overwrite (then clear it) or resuming it."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise UsageError(f"--output-dir {output_dir} is a file, not a folder")
    if resume_from_checkpoint is not None:
        if overwrite:
            raise UsageError(
                "--overwrite and --resume-from-checkpoint exclude each other (replace or continue)"
            )
        return
    found = previous_run(output_dir)
    if not found:
        return
    if not overwrite:
        shown = ", ".join(found[:4]) + (f", ... ({len(found)} in all)" if len(found) > 4 else "")
        raise UsageError(
            f"--output-dir {output_dir} already holds a training run ({shown}); add --overwrite to replace "
            "it, --resume-from-checkpoint last to continue it, or choose another folder"
        )
    if int(os.environ.get("SLURM_NODEID", "0") or 0) == 0:  # one node of a multi-node job clears it
        clear_previous_run(output_dir, found)


def clear_previous_run(output_dir: str, names: list[str]) -> None:
    """Remove what a previous run wrote (several processes may do it at once: missing files are fine)."""
    for name in names:
        path = os.path.join(output_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
