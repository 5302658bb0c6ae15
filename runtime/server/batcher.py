"""Per-model micro-batching: coalesce concurrent requests into one session call.

Each request brings its own latents (seeds are turned into latents on the request side with
:func:`core.noise.latents`, so a request's images never depend on who shares its batch). One
worker task per model:

1. waits for the first queued request;
2. keeps collecting until ``max_batch`` latents are queued or ``max_delay_s`` has passed since
   the *oldest* queued request arrived (requests that queued while the previous batch ran are
   already past their deadline, so under load batches go out back to back);
3. takes requests in arrival order while they fit in ``max_batch`` latents (always at least one;
   a single request larger than ``max_batch`` runs alone, decoded in ``max_batch`` chunks);
4. concatenates their latents, runs the session in a worker thread (the event loop stays free),
   and hands each request exactly its own rows of the result.

At most one batch per model runs at a time; ``max_queue`` bounds the requests waiting behind it,
and a request beyond that is refused at once (:class:`QueueFull`) instead of piling up.
Requests whose caller gave up (timeout, disconnect) are dropped from the queue unrun.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .metrics import ServerMetrics

log = logging.getLogger("runtime.serve")

#: (latents (N, D) float32, max_batch) -> images, first axis N
RunFn = Callable[[np.ndarray, int], np.ndarray]


class QueueFull(Exception):
    """The model's queue holds ``max_queue`` requests already."""


class BatcherClosed(Exception):
    """The server is shutting down and takes no new work."""


@dataclass
class _Pending:
    latents: np.ndarray
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)

    @property
    def n(self) -> int:
        return len(self.latents)


class Batcher:
    def __init__(
        self,
        name: str,
        run: RunFn,
        executor: Executor,
        metrics: ServerMetrics,
        max_batch: int,
        max_delay_s: float,
        max_queue: int,
    ):
        self.name = name
        self._run = run
        self._executor = executor
        self._metrics = metrics
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._running: asyncio.Future | None = None  # the batch in the worker thread, if any
        self._task: asyncio.Task | None = None
        self._publish()

    # -- client side -----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._worker(), name=f"batcher-{self.name}")

    @property
    def depth(self) -> int:
        return len(self._queue)

    async def submit(self, latents: np.ndarray) -> np.ndarray:
        """Images for exactly these latents (rows in order); waits for a batch to run them."""
        if self._closed:
            raise BatcherClosed(self.name)
        self._drop_abandoned()
        if len(self._queue) >= self.max_queue:
            self._metrics.rejected.inc(model=self.name)
            raise QueueFull(self.name)
        item = _Pending(latents, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self._publish()
        self._wakeup.set()
        return await item.future

    # -- worker side -----------------------------------------------------------------------

    def _drop_abandoned(self) -> None:
        if any(p.future.done() for p in self._queue):
            self._queue = deque(p for p in self._queue if not p.future.done())
            self._publish()

    def _publish(self) -> None:
        self._metrics.queue_depth.set(len(self._queue), model=self.name)
        self._metrics.queue_latents.set(sum(p.n for p in self._queue), model=self.name)

    def _queued_latents(self) -> int:
        return sum(p.n for p in self._queue if not p.future.done())

    async def _collect(self) -> list[_Pending]:
        """Wait for work, then for the batch to fill or the oldest request's deadline."""
        while True:
            self._drop_abandoned()
            if self._queue:
                break
            if self._closed:
                return []
            self._wakeup.clear()
            await self._wakeup.wait()
        deadline = self._queue[0].arrived + self.max_delay_s
        while self._queued_latents() < self.max_batch and not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                break
        self._drop_abandoned()
        batch: list[_Pending] = []
        total = 0
        while self._queue and (not batch or total + self._queue[0].n <= self.max_batch):
            item = self._queue.popleft()
            batch.append(item)
            total += item.n
        self._publish()
        return batch

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                if self._closed:
                    return
                continue
            z = np.concatenate([p.latents for p in batch]) if len(batch) > 1 else batch[0].latents
            start = time.perf_counter()
            self._running = loop.run_in_executor(self._executor, self._run, z, self.max_batch)
            try:
                images = await asyncio.shield(self._running)
            except asyncio.CancelledError:
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(BatcherClosed(self.name))
                raise
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                log.error("model %s: batch of %d latents failed: %s", self.name, len(z), exc)
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            finally:
                self._running = None
            self._metrics.batch_duration.observe(time.perf_counter() - start, model=self.name)
            self._metrics.batch_size.observe(len(z), model=self.name)
            self._metrics.batch_requests.observe(len(batch), model=self.name)
            offset = 0
            for p in batch:
                if not p.future.done():
                    p.future.set_result(images[offset : offset + p.n])
                offset += p.n

    async def close(self) -> None:
        """Refuse new work, finish what is queued and running, then stop the worker."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            try:
                await self._task
            finally:
                self._task = None
        for p in self._queue:
            if not p.future.done():
                p.future.set_exception(BatcherClosed(self.name))
        self._queue.clear()
        self._publish()
