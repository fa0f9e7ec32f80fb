"""Batching shared by the model-backed generation stages: images decoded ahead in worker threads, and jobs of
consecutive groups (one group per image) run in fixed-size batches (optionally one key, e.g. one prompt, per
batch), each group emitted whole and in input order.

A generator that serves many requests at once (models/served.py, `--engine openai`) declares `concurrency`:
`run_in_batches` then keeps that many one-row batches in flight (`batching`), still emitting groups in input
order. A batch that fails with a `BadRecord` (a request the server kept refusing) marks its groups' `error`
instead of stopping the run; the stage reports them with `ctx.bad` (`--on-error`).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from clipdpo_cli.io.errors import BadRecord
from clipdpo_cli.io.images import load_image
from clipdpo_cli.io.records import require
from clipdpo_cli.models.generator import TextGenerator


@dataclass
class Group:
    """One unit of output that must stay together (e.g. all captions of one image)."""

    record: dict[str, Any]
    jobs: list[Any]
    payload: Any = None
    results: list[Any] = field(default_factory=list)
    error: BadRecord | None = None  # a job of this group failed (its batch raised a BadRecord)


def batching(generator: Any, batch_size: int) -> tuple[int, int]:
    """(rows per batch, batches in flight) for `generator`: (batch_size, 1) in-process.

    A generator that declares `concurrency` (a server's request window, models/served.py) sends one
    request per row: batches of one row, `concurrency` of them in flight, so a slow or failed request
    holds up or spoils only its own row.
    """
    concurrency = getattr(generator, "concurrency", None)
    return (batch_size, 1) if concurrency is None else (1, max(1, int(concurrency)))


def prefetch_images(
    items: Iterable[tuple[dict[str, Any], Any]],
    image_root: str | None = None,
    workers: int = 4,
    lookahead: int = 64,
) -> Iterator[tuple[dict[str, Any], Any, Any]]:
    """(record, extra, PIL image or BadRecord) in input order, decoded by `workers` threads ahead of use."""

    def load(record: dict[str, Any]) -> Any:
        try:
            return load_image(require(record, "image"), image_root)
        except BadRecord as exc:
            return exc

    if workers <= 0:
        for record, extra in items:
            yield record, extra, load(record)
        return
    queue: collections.deque[tuple[dict[str, Any], Any, Future[Any]]] = collections.deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clipdpo-image") as pool:
        for record, extra in items:
            queue.append((record, extra, pool.submit(load, record)))
            if len(queue) >= lookahead:
                record0, extra0, future = queue.popleft()
                yield record0, extra0, future.result()
        while queue:
            record0, extra0, future = queue.popleft()
            yield record0, extra0, future.result()


def run_in_batches(
    groups: Iterable[Group],
    batch_size: int,
    run_batch: Callable[[list[tuple[Group, Any]]], list[Any]],
    *,
    key: Callable[[Any], Hashable] | None = None,
    window: int | None = None,
    in_flight: int = 1,
) -> Iterator[Group]:
    """Run the jobs of consecutive groups `batch_size` at a time; yield each group once all its jobs are done.

    `run_batch` gets (group, job) pairs and returns one result per pair, which is stored in the group's
    `results` at its job's position. Groups come out in the order they came in, so records of one image
    stay adjacent.

    With `key` (job -> e.g. its prompt), a batch holds jobs of one key where it can: jobs wait in one queue
    per key (in input order) and a queue runs when it holds `batch_size` jobs; when more than `window` jobs
    wait (default: `batch_size` per key seen), the queue with the oldest job runs, so memory stays bounded
    and the first groups finish. Rows of one prompt then decode together: their answers run to similar
    lengths, so a batch pads less than a mix of short and detailed prompts would. Without `key` the jobs run
    in input order, `batch_size` at a time.

    With `in_flight` > 1, that many batches run at once, each in a daemon thread (each `run_batch` call
    blocks on its own requests); results are still taken in submission order. A `BadRecord` raised by
    `run_batch` sets the `error` of the batch's groups; any other exception stops the run once the batches
    before it are out.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if in_flight < 1:
        raise ValueError("in_flight must be >= 1")
    waiting: collections.deque[tuple[int, Group]] = collections.deque()
    left: dict[int, int] = {}  # group number -> its jobs not yet done
    queues: dict[Hashable, list[tuple[int, int, Group, Any]]] = {}  # key -> (group number, job index, ...)
    running: collections.deque[tuple[list[tuple[int, int, Group, Any]], Future[Any]]] = collections.deque()

    def call(batch: list[tuple[int, int, Group, Any]]) -> list[Any] | BadRecord:
        try:
            return run_batch([(group, job) for _, _, group, job in batch])
        except BadRecord as exc:
            return exc

    def collect(batch: list[tuple[int, int, Group, Any]], outputs: list[Any] | BadRecord) -> None:
        if isinstance(outputs, BadRecord):
            for number, _, group, _ in batch:
                group.error = group.error or outputs
                left[number] -= 1
            return
        for (number, index, group, _), result in zip(batch, outputs, strict=True):
            group.results[index] = result  # in job order, whatever order the jobs ran in
            left[number] -= 1

    def flush(name: Hashable) -> None:
        queue = queues.pop(name)
        batch, rest = queue[:batch_size], queue[batch_size:]
        if rest:
            queues[name] = rest
        if in_flight == 1:
            collect(batch, call(batch))
            return
        running.append((batch, in_thread(call, batch)))
        while len(running) >= in_flight:
            drain_one()

    def drain_one() -> None:
        batch, future = running.popleft()
        collect(batch, future.result())

    def finished() -> Iterator[Group]:
        while waiting and not left[waiting[0][0]]:
            number, group = waiting.popleft()
            del left[number]
            yield group

    def oldest() -> Hashable:
        return min(queues, key=lambda name: queues[name][0][0])

    for number, group in enumerate(groups):
        waiting.append((number, group))
        left[number] = len(group.jobs)
        group.results = [None] * len(group.jobs)
        for index, job in enumerate(group.jobs):
            queues.setdefault(None if key is None else key(job), []).append((number, index, group, job))
        limit = window if window is not None else batch_size * max(1, len(queues))
        while True:
            full = next((name for name, queue in queues.items() if len(queue) >= batch_size), _NONE)
            if full is not _NONE:
                flush(full)
            elif sum(map(len, queues.values())) > limit:
                flush(oldest())
            else:
                break
            yield from finished()
        yield from finished()
    while queues:
        flush(oldest())
        yield from finished()
    while running:
        drain_one()
        yield from finished()
    yield from finished()


_NONE = object()


def in_thread(function: Callable[[Any], Any], argument: Any) -> Future[Any]:
    """function(argument) in a daemon thread of its own: Ctrl-C or an error ends the run at once, without
    waiting for the requests in flight (a pool's threads are joined at exit, up to a request timeout)."""
    future: Future[Any] = Future()

    def run() -> None:
        try:
            future.set_result(function(argument))
        except BaseException as exc:  # handed to the thread that waits for it
            future.set_exception(exc)

    threading.Thread(target=run, name="clipdpo-batch", daemon=True).start()
    return future


def llm_batch_runner(
    llm: TextGenerator, settings: Any, system: str | None
) -> Callable[[list[tuple[Group, Any]]], list[str]]:
    """`run_batch` for LLM jobs that carry `.prompt` and `.seed`: one generate call, each row its own seed.

    `settings` gives max_new_tokens, temperature, top_p and seed (None: fresh seeds).
    """

    def run_batch(items: list[tuple[Group, Any]]) -> list[str]:
        jobs = [job for _, job in items]
        return llm.generate(
            [job.prompt for job in jobs],
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            seed=None if settings.seed is None else [job.seed for job in jobs],
            system=system,
        )

    return run_batch
