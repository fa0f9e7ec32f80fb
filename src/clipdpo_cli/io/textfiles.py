"""Reading a small text file a user names (prompts, objects, a chat template), pipes included."""

from __future__ import annotations

from clipdpo_cli.io.errors import InputError


def read_text_file(path: str, what: str) -> str:
    """The UTF-8 text of any readable path: a file, a FIFO or a shell's /dev/fd/N (`--prompts <(...)`), read
    once; a missing or unreadable one is an InputError naming `what` and the path."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{what} is a directory, not a file: {path}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
