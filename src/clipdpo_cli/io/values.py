"""Parsing of option values that may be turned off with 'none'."""

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
