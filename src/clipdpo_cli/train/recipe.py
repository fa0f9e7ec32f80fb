"""`clipdpo train --config FILE`: a YAML of clipdpo's own option names, TRL config fields, and a `trl dpo`
recipe's names where they mean the same thing.

Each key of the file is, in this order:
- a `clipdpo train` option by its field name (`model`, `beta`, `lora`, `batch_size`, `output_dir`, ...): it
  sets that option (an option typed on the command line wins);
- a name TRL's `trl dpo` recipe uses for one of those options (RECIPE_NAMES): ModelConfig's
  `model_name_or_path`, `use_peft`, `lora_r`, `lora_alpha`, ScriptArguments' `dataset_name` (the model
  card's datasets: clipdpo trains on PAIRS), and the DPOConfig fields an option copies as it is
  (`learning_rate`, `num_train_epochs`, `per_device_train_batch_size`, `lr_scheduler_type`, ...);
  the ModelConfig / ScriptArguments values are read with TRL's own parser (HfArgumentParser.parse_dict), so
  they are checked and typed as `trl dpo` would;
- any other TRL DPOConfig / KTOConfig field (`gradient_accumulation_steps`, `hub_private_repo`, ...): it goes
  to the TRL config as it is (an option typed on the command line that decides that field wins);
- `env`: environment variables to set, as TRL's TrlParser does.
Any other key (a recipe field clipdpo has no equivalent for, such as `lora_dropout`, `dtype` or
`dataset_train_split`, or a typo) is refused in one line naming them all.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from typing import Any

from clipdpo_cli.io.errors import InputError, UsageError

# `trl dpo` recipe names (trl.ModelConfig / trl.ScriptArguments / DPOConfig) -> the clipdpo option they set.
RECIPE_NAMES: Mapping[str, str] = {
    "model_name_or_path": "model",  # ModelConfig
    "use_peft": "lora",
    "lora_r": "lora_r",
    "lora_alpha": "lora_alpha",
    "dataset_name": "dataset_id",  # ScriptArguments: named in the card (the pairs are the PAIRS file)
    "num_train_epochs": "epochs",  # DPOConfig fields an option decides (with --max-steps, accumulation)
    "per_device_train_batch_size": "per_device_batch_size",
}
_TRL_ARGUMENTS = ("model_name_or_path", "use_peft", "lora_r", "lora_alpha", "dataset_name")


@dataclasses.dataclass
class Recipe:
    """A --config file read: option values (by field name) and TRL config fields."""

    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    trl: dict[str, Any] = dataclasses.field(default_factory=dict)


def recipe_names() -> dict[str, str]:
    """Every recipe name that sets an option: RECIPE_NAMES and the DPOConfig fields options copy as is."""
    from clipdpo_cli.train.settings import options

    copied = [f for f in options() if len(f.metadata["trl"]) == 1 and f.metadata["to_trl"] is None]
    names = {f.metadata["trl"][0]: f.name for f in copied}
    names = {k: v for k, v in names.items() if k not in {f.name for f in options()}}
    return {**names, **RECIPE_NAMES}


def trl_config_fields() -> set[str]:
    """The fields of TRL's DPOConfig and KTOConfig (--config passes them to TRL)."""
    from trl import DPOConfig, KTOConfig

    return {f.name for cls in (DPOConfig, KTOConfig) for f in dataclasses.fields(cls) if f.init}


def read_config(path: str | None) -> Recipe:
    """The --config file, sorted as the module says; InputError / UsageError in one line."""
    if path is None:
        return Recipe()
    import yaml

    from clipdpo_cli.train.settings import check_no_secrets

    if os.path.isdir(path):
        raise InputError(f"--config {path} is a folder: pass a YAML file")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        raise InputError(f"--config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--config {path}: cannot read it: {exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"--config {path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise InputError(f"--config {path}: must be a mapping of option names and TRL config fields")
    check_no_secrets(data, f"--config {path}")
    return sort_keys(data, path)


def sort_keys(data: dict[str, Any], path: str) -> Recipe:
    from clipdpo_cli.train.settings import options

    fields = {f.name: f for f in options()}
    aliases, trl_fields = recipe_names(), trl_config_fields()
    recipe, unknown = Recipe(), []
    env = data.pop("env", None)
    if env is not None:
        if not isinstance(env, dict):
            raise UsageError(f"--config {path}: env must be a mapping of environment variables")
        os.environ.update({str(k): str(v) for k, v in env.items()})  # as TrlParser does
    for key, value in _trl_arguments(data, path).items():
        data[key] = value
    for key, value in data.items():
        name = key if key in fields else aliases.get(key)
        if name is not None:
            if name in recipe.options:
                raise UsageError(f"--config {path}: {key} sets {name!r} a second time")
            recipe.options[name] = _option_value(fields[name], value, key, path)
        elif key in trl_fields:
            recipe.trl[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise UsageError(
            f"--config {path}: no clipdpo equivalent for {', '.join(sorted(unknown))} (it reads the train "
            "options' names, TRL DPOConfig/KTOConfig fields and the trl dpo names in docs/training.md)"
        )
    return recipe


def _trl_arguments(data: dict[str, Any], path: str) -> dict[str, Any]:
    """The recipe's ModelConfig / ScriptArguments values, checked and typed by TRL's own parser."""
    given = {k: data[k] for k in _TRL_ARGUMENTS if k in data}
    if not given:
        return {}
    from trl import ModelConfig, ScriptArguments, TrlParser

    try:
        model, script = TrlParser((ModelConfig, ScriptArguments)).parse_dict(given, allow_extra_keys=False)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--config {path}: {' '.join(str(exc).split())}") from None
    parsed = {**dataclasses.asdict(model), **dataclasses.asdict(script)}
    return {k: parsed[k] for k in given}


def _option_value(f: dataclasses.Field[Any], value: Any, key: str, path: str) -> Any:
    """A YAML value for an option, checked against the option's type and parsed as the command line is."""
    meta = f.metadata
    if meta["parse"] is not None and value is not None:
        cli_type = meta["cli_type"] or str
        try:
            return meta["parse"](cli_type(str(value) if cli_type is str else value))
        except ValueError as exc:
            raise UsageError(f"--config {path}: {key}: {exc}") from None
    kinds = _types(f.type)
    if str in kinds and isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ",".join(value)  # report_to: [tensorboard, wandb] as TRL recipes write it
    if value is None and type(None) in kinds:
        return None
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not any(isinstance(value, k) and not (k is int and isinstance(value, bool)) for k in kinds):
        wanted = " or ".join(k.__name__ for k in kinds if k is not type(None))
        got = "null" if value is None else type(value).__name__
        raise UsageError(f"--config {path}: {key} must be {wanted}, got {got}")
    return value


def _types(annotation: Any) -> tuple[type, ...]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return tuple(a for a in typing.get_args(annotation) if isinstance(a, type))
    return (annotation,) if isinstance(annotation, type) else (object,)
