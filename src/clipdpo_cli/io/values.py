"""Parsing of option values that may be turned off with 'none'."""

import enum
from collections.abc import Callable
from typing import Any

from clipdpo_cli.io.errors import UsageError

_OFF = {"none", "off", "null", ""}


def optional_float(text: str, option: str) -> float | None:
    if text.strip().lower() in _OFF:
        return None
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{option} must be a number or 'none', got '{text}'") from None


def optional_int(text: str, option: str) -> int | None:
    if text.strip().lower() in _OFF:
        return None
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{option} must be an integer or 'none', got '{text}'") from None


def none_or_float(option: str) -> Callable[[str], float | None]:
    """optional_float for `option`, as a settings field's `parse` (io.setting.setting)."""
    return lambda text: optional_float(text, option)


def none_or_int(option: str) -> Callable[[str], int | None]:
    """optional_int for `option`, as a settings field's `parse` (io.setting.setting)."""
    return lambda text: optional_int(text, option)


def enum_value(value: Any) -> Any:
    """An option's enum member as its plain value ('bf16' for Precision.bf16); anything else unchanged."""
    return value.value if isinstance(value, enum.Enum) else value
