"""What one vae-serve process holds: the loaded bundles with their batchers, and whether it is warm,
draining, and how many requests are in flight. The routes get it as a FastAPI dependency."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from vae_runtime.bundle import EMBEDDED_BUNDLES, embedded_bundle
from vae_runtime.engine import BULK_ROWS, Latents
from vae_runtime.errors import VaeDigitsError
from vae_runtime.generator import Generator
from vae_runtime.serve.batcher import Batcher
from vae_runtime.serve.metrics import Metrics
from vae_runtime.serve.settings import Settings

log = logging.getLogger("uvicorn.error")  # printed with uvicorn's own lines


class UnknownBundleError(VaeDigitsError):
    """A request named a bundle this server did not load."""


@dataclass
class Served:
    name: str
    generator: Generator
    batcher: Batcher


class Service:
    """The loaded bundles with their batchers, and the server's state: warm, draining, requests in flight."""

    def __init__(self, settings: Settings, metrics: Metrics):
        self.settings = settings
        self.metrics = metrics
        self.bundles: dict[str, Served] = {}
        for generator in load_bundles(settings.bundles):
            name = generator.bundle.name
            if name in self.bundles:
                raise VaeDigitsError(
                    f"two bundles are named {name!r}; give each --bundle a distinct directory"
                )
            self.bundles[name] = Served(name, generator, self._batcher(name, generator))
        self.default = next(iter(self.bundles))
        self.ready = False
        self.draining = False
        self.in_flight = 0

    def _batcher(self, name: str, generator: Generator) -> Batcher:
        settings = self.settings
        return Batcher(
            generator.decode_batch,
            max_batch=settings.max_batch,
            max_wait=settings.max_wait_ms / 1000,
            max_queue=settings.max_queue,
            batching=settings.batching,
            calls=1 if settings.batching else os.cpu_count() or 1,
            on_batch=self.metrics.batch_counter(name),
            on_queue=self.metrics.queue_counter(name),
        )

    def bundle(self, name: str | None) -> Served:
        served = self.bundles.get(self.default if name is None else name)
        if served is None:
            raise UnknownBundleError(f"unknown bundle {name!r}; this server has {', '.join(self.bundles)}")
        return served

    async def decode(self, served: Served, latents: Latents) -> np.ndarray:
        if len(latents) > self.settings.max_queue:
            raise VaeDigitsError(
                f"the request asks for {len(latents)} digits; this server takes at most "
                f"{self.settings.max_queue} per request (--max-queue)"
            )
        return await served.batcher.run(latents, time.monotonic() + self.settings.timeout)

    def start(self) -> None:
        for served in self.bundles.values():
            served.batcher.start()

    async def stop(self) -> None:
        for served in self.bundles.values():
            await served.batcher.stop()

    def warm(self) -> None:
        """Open every model and settle the bulk route's measurement before the first request needs it."""
        for served in self.bundles.values():
            g = served.generator
            label = 0 if g.manifest.conditional else None
            g.generate(label, count=BULK_ROWS if g.bulk else 1, seed=0)
            g.encode(np.zeros((1, 28, 28), np.uint8), label)
        self.ready = True
        log.info("ready: %s", ", ".join(self.bundles))


def load_bundles(bundles: tuple[str, ...]) -> list[Generator]:
    """The Generators for --bundle values; none given: every embedded bundle, the runtime's default first.

    Each decoder call runs on one thread: the server's concurrency is its lanes and its processes, and
    a call split into chunks on the runtime's shared thread pool would make a small batch wait behind
    the chunks of a large request there.
    """
    if not bundles:
        default = embedded_bundle()
        others = [embedded_bundle(name) for name in EMBEDDED_BUNDLES if embedded_bundle(name) != default]
        bundles = tuple(str(path) for path in (default, *others))
    return [Generator.load(bundle, threads=1) for bundle in bundles]
