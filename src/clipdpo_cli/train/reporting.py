"""`clipdpo train --report-to`: every tracker checked (known to transformers, and installed) before any model
loads, instead of a TensorBoardCallback traceback after minutes of loading."""

from __future__ import annotations

from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.io.extras import extra_for


def parse_report_to(value: str | list[str] | None) -> list[str]:
    """'none', one tracker, or several joined by commas (a list from --config): the trackers, checked.

    Unknown names and trackers that are not installed are a UsageError (one line, with the install command).
    'all' is transformers' "every installed tracker".
    """
    names = value if isinstance(value, list) else str(value or "none").split(",")
    names = [str(n).strip() for n in names if str(n).strip()]
    if names in ([], ["none"]):
        return []
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    available = set(get_available_reporting_integrations())
    if names == ["all"]:
        return sorted(available)
    known = sorted(INTEGRATION_TO_CALLBACK)
    for name in names:
        if name not in INTEGRATION_TO_CALLBACK:
            raise UsageError(f"--report-to: unknown tracker '{name}' (none, all, or {', '.join(known)})")
        if name not in available and not (name == "flyte" and _installed("flytekit")):
            extra = extra_for(name)  # tensorboard: the train extra; wandb: its own
            hint = f"pip install 'clipdpo-cli[{extra}]'" if extra else f"pip install {name.replace('_', '-')}"
            raise UsageError(f"--report-to {name}: {name} is not installed ({hint})")
    return names


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
