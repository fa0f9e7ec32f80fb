"""A `transformers serve` process on a free loopback port, for the `--engine openai` tests and benchmark.

`transformers serve` (the `transformers[serving]` extra: fastapi, uvicorn, openai) loads a model on its first
request for it, by the request's `model`: a local folder works offline (HF_HUB_OFFLINE=1), so one server
serves every tiny model folder of a test run. It listens on 127.0.0.1 only.

    >>> with transformers_server() as url:                  # doctest: +SKIP
    ...     run("clipdpo caption imgs/ --engine openai --base-url", url, "-m", folder)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(port: int, extra: tuple[str, ...] = ()) -> list[str]:
    """`transformers serve` on 127.0.0.1:port, CPU: the venv's script, else the module's entry point."""
    script = os.path.join(os.path.dirname(sys.executable), "transformers")
    head = [script] if os.path.exists(script) else [shutil.which("transformers") or "transformers"]
    return [
        *head,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
        "--log-level",
        "warning",
        *extra,
    ]


def wait_healthy(url: str, process: subprocess.Popen | None, timeout: float) -> None:
    """Until GET {url}/health answers 200; RuntimeError if the server exits or does not answer in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"transformers serve did not answer at {url} within {timeout:g} s")


@contextlib.contextmanager
def transformers_server(
    port: int | None = None,
    log: str | None = None,
    threads: int = 1,
    timeout: float = 120.0,
    extra: tuple[str, ...] = (),
) -> Iterator[str]:
    """Run `transformers serve` while the block runs; yields its API URL (http://127.0.0.1:PORT/v1).

    `threads`: torch's CPU threads in the server (OMP_NUM_THREADS); `log`: a file for its output; `extra`:
    more `transformers serve` options (e.g. --continuous-batching).
    """
    port = port or free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
    }
    sink = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        serve_command(port, extra), env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, timeout)
        yield f"{base}/v1"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if log:
            sink.close()  # type: ignore[union-attr]
