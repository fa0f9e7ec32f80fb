"""The one check of output paths before anything is opened for writing: no output is an input (or another
output) under any name: the same path, a symlink or a hard link to it, or stdin/stdout redirected to it."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable

from clipdpo_cli.io.errors import UsageError
from clipdpo_cli.io.images import IMAGE_EXTENSIONS

# (what the user typed it as, e.g. "-o" or "--scored", the path; '-' or None: stdin for an input, stdout for
# an output)
Named = tuple[str, "str | None"]


def _stat(path: str | None, fd: int) -> os.stat_result | None:
    """The file behind a path, or behind the standard stream `fd` for '-' / None; None when there is none."""
    try:
        if path in (None, "-"):
            stream = sys.stdin if fd == 0 else sys.stdout
            return os.fstat(stream.fileno()) if stream is not None else None
        return os.stat(path)
    except (OSError, ValueError, AttributeError):  # missing, a pattern, a stream without a descriptor
        return None


def _shown(option: str, path: str | None, fd: int) -> str:
    if path in (None, "-"):
        return "stdin" if fd == 0 else "stdout"
    return f"{option} {path}".strip()


# Files a folder given as a stage's INPUT is read for (images, webdataset shards, dataset files): an output
# onto one of them inside that folder would be read and destroyed. Other files there (captions.jsonl of an
# earlier run) are not inputs.
FOLDER_INPUT_SUFFIXES = (*IMAGE_EXTENSIONS, ".tar", ".tar.gz", ".tgz", ".parquet", ".arrow")


def _inside(path: str, folder: str) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(folder).rstrip(os.sep) + os.sep)


def check_outputs(
    outputs: Iterable[Named], inputs: Iterable[Named], folders: Iterable[Named] = ()
) -> None:
    """UsageError when an output is the same regular file as an input or as another output.

    Compared by device and inode (os.path.samestat), so symlinks and hard links count; '-' / None is the
    file stdin (inputs) or stdout (outputs) is redirected from or to. Only regular files can be lost this way:
    a terminal, /dev/null or a pipe on both sides is never refused. Outputs not written yet are compared by
    their resolved paths. An input is named by its option ('' for the INPUT argument). An input that is a
    folder holds inputs too: an existing output inside it with a suffix of FOLDER_INPUT_SUFFIXES is refused;
    `folders` (a benchmark's folder, e.g. --amber-root) are read whole: any existing output inside them is
    refused. Call it before opening any output.
    """
    inputs = list(inputs)
    whole = [(option, path) for option, path in folders if path and os.path.isdir(path)]
    read_for = [(option, path) for option, path in inputs if path not in (None, "-") and os.path.isdir(path)]
    for option, path in outputs:
        if path in (None, "-") or not os.path.isfile(path):
            continue
        for other_option, folder in whole + read_for:
            if _inside(path, folder) and (
                (other_option, folder) in whole or path.lower().endswith(FOLDER_INPUT_SUFFIXES)
            ):
                raise UsageError(
                    f"{_shown(option, path, 1)} is a file of the input {_shown(other_option, folder, 0)}: "
                    "writing it would destroy what is read; write to another file"
                )
    seen_in = [(option, path, st) for option, path in inputs if (st := _stat(path, 0)) is not None]
    seen_out: dict[object, tuple[str, str | None]] = {}
    for option, path in outputs:
        st = _stat(path, 1)
        if st is None and path not in (None, "-"):  # not written yet
            key: object = os.path.realpath(path)
        elif st is not None and stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            for other_option, other, other_st in seen_in:
                if os.path.samestat(st, other_st):
                    raise UsageError(
                        f"{_shown(option, path, 1)} is the input {_shown(other_option, other, 0)} itself: "
                        "writing it would destroy what is still to be read; write to another file"
                    )
        else:
            continue
        if key in seen_out:
            other_option, other = seen_out[key]
            raise UsageError(
                f"{_shown(option, path, 1)} and {_shown(other_option, other, 1)} are the same file: "
                "give each output its own file"
            )
        seen_out[key] = (option, path)
