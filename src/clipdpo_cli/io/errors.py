"""Exceptions that the CLI turns into one clear line on stderr instead of a traceback."""


class ClipdpoError(Exception):
    """Base class: its message is shown to the user as is."""

    exit_code = 1


class InputError(ClipdpoError):
    """The input as a whole cannot be used (missing file, unreadable folder, bad option value)."""


class UsageError(ClipdpoError):
    """The command line is wrong (exit code 2)."""

    exit_code = 2


class BadRecord(ClipdpoError):
    """One record is unusable; the error policy decides whether this stops the run or is skipped."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


class RecordFailure(ClipdpoError):
    """A bad record under `--on-error fail`: stops the run with exit code 1."""


class Interrupted(ClipdpoError):
    """Ctrl-C: outputs were closed on a whole line; exit code 130 as shells expect."""

    exit_code = 130


class PipeClosed(ClipdpoError):
    """The reader of stdout went away (`| head`): stop quietly with exit code 0."""

    exit_code = 0
