"""`clipdpo train --output-dir`: never train over another run by accident; delete only what a run wrote.

Every run records itself in its output folder: `.clipdpo-run.json` (MARKER) lists the names that were there
before it started (`kept`) and, once it has finished, the names it wrote (`wrote`). A folder that already
holds what a run writes (a model, an adapter, checkpoint-N folders, train_summary.json) is refused unless
`--overwrite` or `--resume-from-checkpoint` (continuing that run is the point). `--overwrite` removes only
what a clipdpo run wrote there: the marker's `wrote`, and, for a run that was killed before it finished, the
names a run writes that were not in `kept`. A folder holding such names and no marker never held a clipdpo
run: `--overwrite` refuses it, naming them. Other files (a SLURM log, notes) are neither a reason to refuse
nor removed. Nothing is removed here before every check of the run passed: `check_output_dir` only decides;
`prepare_output_dir` (after the model loaded) removes and writes the new marker.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.io.jsonfile import write_json

if TYPE_CHECKING:
    from clipdpo_cli.train.settings import TrainSettings

MARKER = ".clipdpo-run.json"

# What a run leaves in its output folder (the model and processor files, an adapter, the summary, the card).
RUN_FILE = re.compile(
    r"^(config\.json|generation_config\.json|model(-\d+-of-\d+)?\.safetensors|model\.safetensors\.index\.json|"
    r"pytorch_model.*\.bin|adapter_model\.safetensors|adapter_config\.json|train_summary\.json|"
    r"training_args\.bin|README\.md|processor_config\.json|preprocessor_config\.json|tokenizer.*\.json|"
    r"special_tokens_map\.json|chat_template\.(jinja|json)|vocab\.json|merges\.txt|tokenizer\.model)$"
)
RUN_FOLDER = re.compile(r"^(checkpoint-\d+|runs)$")  # checkpoints, TensorBoard event files


def run_like(output_dir: str) -> list[str]:
    """The names in `output_dir` that a training run writes (sorted; empty for a new or unrelated folder)."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for entry in os.scandir(output_dir):
        if (entry.is_dir() and RUN_FOLDER.match(entry.name)) or (
            entry.is_file() and RUN_FILE.match(entry.name)
        ):
            found.append(entry.name)
    return sorted(found)


def read_marker(output_dir: str) -> dict[str, Any] | None:
    """The folder's run record, None without one (a record that is not ours counts as none)."""
    try:
        with open(os.path.join(output_dir, MARKER), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("kept"), list):
        return None
    return data


@dataclass(frozen=True)
class OutputPlan:
    """What the run does with its output folder: the names --overwrite removes (after the model loaded)."""

    output_dir: str
    remove: tuple[str, ...] = ()
    resume: bool = False


def previous_run(output_dir: str) -> list[str]:
    """The names in `output_dir` that a training run wrote (by the folder's marker, else by their names)."""
    marker = read_marker(output_dir)
    present = set(os.listdir(output_dir)) if os.path.isdir(output_dir) else set()
    found = set(run_like(output_dir))
    if marker is not None:
        found = (found - set(marker["kept"])) | (set(marker.get("wrote") or ()) & present)
    return sorted(found - {MARKER})


def shown(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def same_folder(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def inside(path: str, folder: str) -> bool:
    """`path` is `folder` or lies under it (links resolved)."""
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def check_output_dir(
    output_dir: str,
    overwrite: bool,
    resume_from_checkpoint: str | None,
    models: dict[str, str | None] | None = None,
    inputs: dict[str, str | None] | None = None,
) -> OutputPlan:
    """Every check of the output folder; what --overwrite will remove. Removes nothing.

    models: the model folders the run reads (`--model`, `--ref-model`): the output folder may not be one.
    inputs: every path the run reads (those folders, the pairs, a chat template...): --overwrite may not
    remove one.
    """
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise UsageError(f"--output-dir {output_dir} is a file, not a folder")
    for option, model in (models or {}).items():
        if model and os.path.isdir(output_dir) and same_folder(model, output_dir):
            raise UsageError(
                f"--output-dir {output_dir} is the {option} folder: the run would write over that model's "
                "files; choose another folder"
            )
    if resume_from_checkpoint is not None:
        if overwrite:
            raise UsageError(
                "--overwrite and --resume-from-checkpoint exclude each other (replace or continue)"
            )
        return OutputPlan(output_dir, resume=True)
    marker = read_marker(output_dir)
    found = previous_run(output_dir)
    # names a run writes that no clipdpo run wrote here: no marker, or there before the marked run began
    foreign = (
        run_like(output_dir) if marker is None else sorted(set(run_like(output_dir)) & set(marker["kept"]))
    )
    if foreign and overwrite:
        why = f"no {MARKER} there" if marker is None else f"there before the run its {MARKER} records"
        raise UsageError(
            f"--overwrite: {output_dir} holds {shown(foreign)}, which no clipdpo run wrote ({why}); "
            "--overwrite removes only what a clipdpo run wrote: move them away or choose another folder"
        )
    found = sorted(set(found) | set(foreign))
    if not found:
        return OutputPlan(output_dir)
    if not overwrite:
        raise UsageError(
            f"--output-dir {output_dir} already holds a training run ({shown(found)}); add --overwrite to "
            "replace it, --resume-from-checkpoint last to continue it, or choose another folder"
        )
    for option, path in (inputs or {}).items():
        for name in found:
            if path and os.path.exists(path) and inside(path, os.path.join(output_dir, name)):
                raise UsageError(
                    f"--overwrite would remove {os.path.join(output_dir, name)}, which holds {option} "
                    f"{path}; choose another folder"
                )
    return OutputPlan(output_dir, tuple(found))


def output_plan(s: TrainSettings) -> OutputPlan:
    """The checks of a run's --output-dir against its own inputs; what --overwrite will remove."""
    models = {"--model": s.model, "--ref-model": s.ref_model}
    inputs = {
        **models,
        "the pairs": s.pairs,
        "--chat-template": s.chat_template,
        "--image-root": s.image_root,
    }
    return check_output_dir(s.output_dir, s.overwrite, s.resume_from_checkpoint, models, inputs)


def prepare_output_dir(plan: OutputPlan) -> None:
    """After every check passed and the model loaded (main process only): remove the previous run
    (--overwrite) and record the new one in its marker (kept: what is there now)."""
    clear_previous_run(plan.output_dir, list(plan.remove))
    os.makedirs(plan.output_dir, exist_ok=True)
    marker = read_marker(plan.output_dir)
    if plan.resume and marker is not None:
        record = {**marker, "finished": False}  # continuing the run it records
    else:
        present = os.listdir(plan.output_dir)
        # resuming a run that has no marker (an older clipdpo): what a run writes is that run's
        kept = [n for n in present if n != MARKER and (not plan.resume or n not in run_like(plan.output_dir))]
        record = {"kept": sorted(kept), "wrote": [], "finished": False}
    from clipdpo_cli import __version__

    record.update(clipdpo=__version__, started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    write_marker(plan.output_dir, record)


def finish_output_dir(output_dir: str) -> None:
    """The run is saved: its marker lists every name it wrote (main process only)."""
    marker = read_marker(output_dir)
    if marker is None:
        return
    kept = set(marker["kept"])
    wrote = sorted(n for n in os.listdir(output_dir) if n != MARKER and n not in kept)
    write_marker(output_dir, {**marker, "wrote": wrote, "finished": True})


def write_marker(output_dir: str, record: dict[str, Any]) -> None:
    write_json(record, os.path.join(output_dir, MARKER), indent=1)


def clear_previous_run(output_dir: str, names: list[str]) -> None:
    """Remove what a previous run wrote (several processes may do it at once: missing files are fine)."""
    for name in names:
        path = os.path.join(output_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
