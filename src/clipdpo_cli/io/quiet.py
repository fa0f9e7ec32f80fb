"""--quiet for the libraries too: no progress bars, log chatter or warnings from transformers, TRL, peft,
datasets, huggingface_hub, accelerate or DeepSpeed ("Loading weights", "Writing model shards", the
deprecation warnings each save prints). clipdpo's own errors still reach stderr; they are not logging."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

# Read by the libraries when they are imported, and inherited by processes started meanwhile (accelerate's
# workers, DataLoader workers).
QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "DATASETS_VERBOSITY": "error",
    "PYTHONWARNINGS": "ignore",
}


def _bar_switches() -> list[tuple[Callable[[], Any], Callable[[], Any]]]:
    """(disable, enable) for the progress bars of libraries already imported."""
    switches = []
    if sys.modules.get("huggingface_hub") is not None:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

        switches.append((disable_progress_bars, enable_progress_bars))
    if sys.modules.get("transformers") is not None:
        from transformers.utils import logging as hf_logging

        switches.append((hf_logging.disable_progress_bar, hf_logging.enable_progress_bar))
    if sys.modules.get("datasets") is not None:
        import datasets

        switches.append((datasets.disable_progress_bars, datasets.enable_progress_bars))
    return switches


@contextlib.contextmanager
def silenced_libraries(quiet: bool = True) -> Iterator[None]:
    """While the block runs (when `quiet`): library bars, logging below ERROR and Python warnings are off.

    Everything is put back afterwards (the tests run many commands in one process).
    """
    if not quiet:
        yield
        return
    saved_env = {name: os.environ.get(name) for name in QUIET_ENV}
    had_transformers = "transformers" in sys.modules
    os.environ.update(QUIET_ENV)
    logging.disable(logging.WARNING)  # every library logger: only errors get through
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for disable, _ in _bar_switches():
            with contextlib.suppress(Exception):
                disable()
        try:
            yield
        finally:
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            logging.disable(logging.NOTSET)
            if saved_env["HF_HUB_DISABLE_PROGRESS_BARS"] is None:
                for _, enable in _bar_switches():  # libraries imported meanwhile read the variables too
                    with contextlib.suppress(Exception):
                        enable()
            if (
                not had_transformers
                and saved_env["TRANSFORMERS_VERBOSITY"] is None
                and "transformers" in sys.modules
            ):
                from transformers.utils import logging as hf_logging

                hf_logging.set_verbosity_warning()
