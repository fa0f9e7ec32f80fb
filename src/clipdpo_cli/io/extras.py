"""The optional dependencies: which extra of `pip install 'clipdpo-cli[EXTRA]'` brings a module, and the one
line a command says when it is missing (never a traceback).

`pip install clipdpo-cli` is the core: caption, ask, perturb, score, categorize, filter, pair, respond,
export (JSONL formats), the eval-X scorers, probe and models. What needs more is an extra (pyproject.toml;
tests/test_dependencies.py checks that this table and pyproject's extras agree):

    train     trl, accelerate, deepspeed, peft, datasets, tensorboard: `train`, `ref-logps`, `score --scorer
              lvlm` (TRL's fused LM head, the log-probs training computes)
    inputs    datasets, webdataset: the non-JSONL inputs (HF datasets, parquet, arrow, webdataset shards) and
              `export --format parquet`
    zeroshot  scipy: eval-zeroshot's MATLAB-file layouts (Stanford Cars, Flowers-102)
    report    matplotlib: `clipdpo report`
    serving   openai: `--engine openai`
    wandb     wandb: `train --report-to wandb`

The CLI (cli.py) turns a ModuleNotFoundError of one of these modules into that line wherever it is raised;
`require` checks up front, before a model loads.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from clipdpo_cli.io.errors import ClipdpoError

# top-level module -> the extras that install it (the first is named, unless the command has its own)
EXTRAS: dict[str, tuple[str, ...]] = {
    "trl": ("train",),
    "accelerate": ("train",),
    "deepspeed": ("train",),
    "peft": ("train",),
    "tensorboard": ("train",),
    "datasets": ("inputs", "train"),
    "webdataset": ("inputs",),
    "scipy": ("zeroshot",),
    "matplotlib": ("report",),
    "openai": ("serving",),
    "wandb": ("wandb",),
}
# a command whose own extra is named first when it declares the missing module (train's datasets)
COMMAND_EXTRAS = {"train": "train", "ref-logps": "train"}


class MissingExtra(ClipdpoError):
    """An optional dependency is not installed: one line naming the extra that installs it (exit 1)."""


def extra_for(module: str, command: str = "") -> str | None:
    """The extra that installs top-level `module` (for `command`, its own extra first); None: not optional."""
    extras = EXTRAS.get(module.split(".")[0])
    if not extras:
        return None
    own = COMMAND_EXTRAS.get(command)
    return own if own in extras else extras[0]


def missing_extra(module: str, command: str = "", what: str = "") -> MissingExtra | None:
    """The error for a missing optional `module` (None when no extra declares it, or when its top-level
    package is installed: a submodule missing from an installed library is not a missing extra)."""
    import importlib.util

    extra = extra_for(module, command)
    top = module.split(".")[0]
    if extra is None or importlib.util.find_spec(top) is not None:
        return None
    needs = f"{what} needs" if what else "needs"
    install = f"pip install 'clipdpo-cli[{extra}]'"
    return MissingExtra(f"{needs} the {extra} extra ({top} is not installed): {install}")


def require(module: str, what: str = "", command: str = "") -> ModuleType:
    """`import module`, or a MissingExtra naming its extra (`what`: what needs it, e.g. '--scorer lvlm')."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        error = missing_extra(exc.name or module, command, what)
        if error is None:
            raise
        raise error from None
