"""Dynamic batching: decoder rows of concurrent requests to one bundle share one model call.

Like Triton's dynamic batcher (max_queue_delay) or Ray Serve's @serve.batch (batch_wait_timeout_s): the
first waiting request opens a batch, which leaves after `max_wait` seconds or as soon as it holds
`max_batch` rows. Rows waiting past `max_queue` are refused at once instead of piling up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from vae_runtime.engine import Latents

DecodeBatch = Callable[[Sequence[Latents]], list[np.ndarray]]


class QueueFullError(Exception):
    """More rows are waiting than the queue holds: come back later."""


class ExpiredError(Exception):
    """The request waited past its deadline before a model call could take it."""


@dataclass
class _Job:
    latents: Latents
    deadline: float
    future: asyncio.Future[np.ndarray] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass
class Batcher:
    """One bundle's queue of decoder rows and the task that feeds them to `decode` in batches.

    batching=False: every request alone in its own model call, `calls` of them at once (the baseline).
    on_batch(rows, seconds) is told the size and the wall time of every model call.
    """

    decode: DecodeBatch
    max_batch: int = 256
    max_wait: float = 0.002
    max_queue: int = 4096
    batching: bool = True
    calls: int = 1
    on_batch: Callable[[int, float], None] = lambda rows, seconds: None
    _jobs: deque[_Job] = field(default_factory=deque)
    _rows: int = 0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _full: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(self.calls, thread_name_prefix="vae-serve")

    @property
    def waiting_rows(self) -> int:
        return self._rows

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._feed()) for _ in range(self.calls)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=True)

    async def run(self, latents: Latents, deadline: float) -> np.ndarray:
        """The decoded images of `latents`; QueueFullError at once when the queue is full."""
        if self._rows + len(latents) > self.max_queue:
            raise QueueFullError(f"{self._rows} rows are waiting; the queue holds {self.max_queue}")
        job = _Job(latents, deadline)
        self._jobs.append(job)
        self._rows += len(latents)
        self._arrived.set()
        if self._rows >= self.max_batch:
            self._full.set()
        return await job.future

    async def _feed(self) -> None:
        while True:
            await self._arrived.wait()
            if self.batching and self._rows < self.max_batch:
                # the first row waits at most max_wait for others to join it
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.max_wait)
            jobs = self._take()
            if jobs:
                await self._decode(jobs)

    def _take(self) -> list[_Job]:
        """The next batch: whole requests up to max_batch rows (one request at least), none expired."""
        jobs: list[_Job] = []
        rows = 0
        now = time.monotonic()
        while self._jobs and (
            not jobs or (self.batching and rows + len(self._jobs[0].latents) <= self.max_batch)
        ):
            job = self._jobs.popleft()
            self._rows -= len(job.latents)
            if job.future.done():  # the client went away
                continue
            if job.deadline < now:
                job.future.set_exception(ExpiredError("the request waited past its deadline"))
                continue
            jobs.append(job)
            rows += len(job.latents)
        if not self._jobs:
            self._arrived.clear()
        if self._rows < self.max_batch:
            self._full.clear()
        return jobs

    async def _decode(self, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            images = await loop.run_in_executor(self._pool, self.decode, [job.latents for job in jobs])
        except Exception as error:  # a model failure fails its requests, not the batcher
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        self.on_batch(sum(len(job.latents) for job in jobs), time.perf_counter() - started)
        for job, image in zip(jobs, images, strict=True):
            if not job.future.done():
                job.future.set_result(image)
