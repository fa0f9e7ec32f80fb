"""Project-wide test helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

# Fixtures shared across the folders (tests/ mirrors src/: io, stages, models, train, eval, commands, e2e):
# the tiny CLIP scorers and images, the tiny LVLM / LLM generation fixtures, the toy preference pairs.
pytest_plugins = [
    "tests.fixtures.clip", "tests.fixtures.generation", "tests.fixtures.serving", "tests.fixtures.train"
]

# Stages shard by these variables; a suite started inside a SLURM array job must still see whole inputs.
# Removed here, once, every subprocess any test helper starts inherits the clean environment.
for _var in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
             "SLURM_ARRAY_TASK_STEP"):  # fmt: skip
    os.environ.pop(_var, None)


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def run_cli(args: list[str], input: bytes | str | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run `clipdpo ARGS` in a subprocess, as a user's shell would."""
    data = input.encode() if isinstance(input, str) else input
    return subprocess.run(
        [sys.executable, "-m", "clipdpo_cli", *args],
        input=data,
        capture_output=True,
        env=cli_env(**env),
        timeout=600,
    )


def run_text_cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """`clipdpo ARGS` in a subprocess with text stdin/stdout/stderr (offline, one thread; `env` on top)."""
    return subprocess.run(
        [sys.executable, "-m", "clipdpo_cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=cli_env(HF_HUB_OFFLINE="1", **(env or {})),
        timeout=timeout,
    )


def invoke_cli(*args: str):
    """`clipdpo ARGS` in-process through typer's CliRunner (stdout and stderr kept apart): no new
    interpreter and torch start-up, for tests that need neither pipes nor signals."""
    from typer.testing import CliRunner

    from clipdpo_cli.cli import build_app

    return CliRunner().invoke(build_app(), list(args), catch_exceptions=False)


class _MainCommand:
    """What CliRunner.invoke needs of a command, around `clipdpo_cli.cli.main` itself (so a usage error or a
    ClipdpoError gives the exit code and the one stderr line that a user's shell sees)."""

    name = "clipdpo"

    def main(self, args: list[str], prog_name: str, **_: object) -> None:
        from clipdpo_cli.cli import main

        main(list(args))


def run_in_process(
    *args: str, stdin: str | bytes | None = None, env: dict[str, str] | None = None, text: bool = True
) -> subprocess.CompletedProcess:
    """`clipdpo ARGS` through the real entry point in this process, offline: as `run_text_cli` (or, with
    text=False, `run_cli`: bytes out) without a new interpreter's start-up. For option and usage-error
    checks; tests of pipes, signals and stdout purity keep a real subprocess."""
    from click.testing import CliRunner  # typer's own wants a Typer app, not the entry point
    from huggingface_hub import constants

    offline, constants.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE, True
    try:
        result = CliRunner().invoke(_MainCommand(), list(args), input=stdin, env=env, catch_exceptions=False)
    finally:
        constants.HF_HUB_OFFLINE = offline
    if text:
        return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout_bytes, result.stderr_bytes)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def tiny_llava_path(request: pytest.FixtureRequest) -> str:
    """The tiny random LLaVA (clipdpo_mini.models.tiny_llava), built once per run (tests/tiny_models.py)."""
    from clipdpo_mini.models.tiny_llava import build_tiny_llava
    from tests.tiny_models import cached_build, tiny_model_cache

    return cached_build(tiny_model_cache(request.config), "tiny-llava", build_tiny_llava)


@pytest.fixture(scope="session")
def tiny_clip_path(request: pytest.FixtureRequest) -> Callable[[int], str]:
    """tiny_clip_path(seed) -> 'local-dir:...' of a tiny random open_clip CLIP, built once per test run."""
    from clipdpo_mini.models.tiny_clip import build_tiny_clip
    from tests.tiny_models import cached_build, tiny_model_cache

    def get(seed: int = 0) -> str:
        return cached_build(tiny_model_cache(request.config), "tiny-clip", build_tiny_clip, seed=seed)

    return get


@pytest.fixture(scope="session")
def tiny_llm_path(request: pytest.FixtureRequest) -> Callable[..., str]:
    """tiny_llm_path(**build_args) -> folder of a tiny Llama chat LLM (clipdpo_mini.models.tiny_llm), built
    once per test run for each set of build arguments (e.g. reply=DEMO_REPLY, num_layers=1)."""
    from clipdpo_mini.models.tiny_llm import build_tiny_llm
    from tests.tiny_models import cached_build, tiny_model_cache

    def get(**build_args: object) -> str:
        return cached_build(tiny_model_cache(request.config), "tiny-llm", build_tiny_llm, **build_args)

    return get


@pytest.fixture(autouse=True)
def _sigint_not_left_ignored(request: pytest.FixtureRequest):
    """An ignored SIGINT is inherited by every later subprocess of the same worker, so a Ctrl-C test's
    child would ignore Ctrl-C and finish (seen once: both Ctrl-C tests of one worker failed that way, the
    cause not found). A test that leaves SIGINT ignored gets Python's handler back, with a warning naming
    it."""
    yield
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        import warnings

        signal.signal(signal.SIGINT, signal.default_int_handler)
        warnings.warn(f"{request.node.nodeid} left SIGINT ignored; restored", stacklevel=1)
