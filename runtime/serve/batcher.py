"""Continuous batching: decoder rows of concurrent requests to one bundle share one model call.

A batch leaves as soon as the decoder is free: an idle decoder takes a lone request at once, and the
requests that arrive while a call runs gather for the next one (up to `max_batch` rows), as Triton's
and TorchServe's batchers do when no delay is set. `max_wait` > 0 holds an idle decoder that long for
company instead (Triton's max_queue_delay). Rows waiting past `max_queue` are refused at once instead
of piling up.
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
class _Lane:
    """Jobs waiting for model calls that `calls` feed tasks make, each on a thread of `pool`."""

    calls: int
    jobs: deque[_Job] = field(default_factory=deque)
    rows: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.pool = ThreadPoolExecutor(self.calls, thread_name_prefix="vae-serve")


@dataclass
class Batcher:
    """One bundle's queue of decoder rows and the tasks that feed them to `decode` in batches.

    A request of `max_batch` rows or more is a batch of its own: it waits in a lane of its own, decoded
    beside the batches of small requests, so that these do not wait behind it. Each lane holds at most
    `max_queue` waiting rows.
    batching=False: every request alone in its own model call, `calls` of them at once (the baseline).
    on_batch(rows, seconds) is told the size and the wall time of every model call, on_queue(rows) the
    rows waiting whenever they change.
    """

    decode: DecodeBatch
    max_batch: int
    max_wait: float
    max_queue: int
    batching: bool = True
    calls: int = 1
    on_batch: Callable[[int, float], None] = lambda rows, seconds: None
    on_queue: Callable[[int], None] = lambda rows: None
    _full: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._small, self._large = _Lane(self.calls), _Lane(1)

    @property
    def waiting_rows(self) -> int:
        return self._small.rows + self._large.rows

    def start(self) -> None:
        lanes = [self._small] * self.calls + [self._large]
        self._tasks = [asyncio.create_task(self._feed(lane)) for lane in lanes]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for lane in (self._small, self._large):
            lane.pool.shutdown(wait=True)

    async def run(self, latents: Latents, deadline: float) -> np.ndarray:
        """The decoded images of `latents`; QueueFullError at once when the queue is full."""
        lane = self._large if len(latents) >= self.max_batch else self._small
        if lane.rows + len(latents) > self.max_queue:
            raise QueueFullError(f"{lane.rows} rows are waiting; the queue holds {self.max_queue}")
        job = _Job(latents, deadline)
        lane.jobs.append(job)
        lane.rows += len(latents)
        self.on_queue(self.waiting_rows)
        lane.arrived.set()
        if self._small.rows >= self.max_batch:
            self._full.set()
        return await job.future

    async def _feed(self, lane: _Lane) -> None:
        while True:
            await lane.arrived.wait()
            if lane is self._small and self.batching and self.max_wait and lane.rows < self.max_batch:
                # the first row waits at most max_wait for others to join it
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.max_wait)
            jobs = self._take(lane)
            if jobs:
                await self._decode(lane, jobs)

    def _take(self, lane: _Lane) -> list[_Job]:
        """The next batch: whole requests up to max_batch rows (one request at least), none expired."""
        jobs: list[_Job] = []
        rows = 0
        now = time.monotonic()
        waiting = lane.jobs
        while waiting and (not jobs or (self.batching and rows + len(waiting[0].latents) <= self.max_batch)):
            job = waiting.popleft()
            lane.rows -= len(job.latents)
            if job.future.done():  # the client went away
                continue
            if job.deadline < now:
                job.future.set_exception(ExpiredError("the request waited past its deadline"))
                continue
            jobs.append(job)
            rows += len(job.latents)
        self.on_queue(self.waiting_rows)
        if not waiting:
            lane.arrived.clear()
        if self._small.rows < self.max_batch:
            self._full.clear()
        return jobs

    async def _decode(self, lane: _Lane, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            images = await loop.run_in_executor(lane.pool, self.decode, [job.latents for job in jobs])
        except Exception as error:  # a model failure fails its requests, not the batcher
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        self.on_batch(sum(len(job.latents) for job in jobs), time.perf_counter() - started)
        for job, image in zip(jobs, images, strict=True):
            if not job.future.done():
                job.future.set_result(image)
