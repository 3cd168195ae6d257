"""vae-serve's Prometheus metrics, in a registry of their own (one per app).

With several worker processes (`vae-serve --workers N`), PROMETHEUS_MULTIPROC_DIR names a directory
where every process writes its samples, and /metrics, whichever worker answers it, sums them all
(prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vae_serve_requests",
            "Requests answered, by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vae_serve_request_seconds",
            "Time from request to response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "vae_serve_batch_rows",
            "Rows per decoder call, by bundle.",
            ["bundle"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.decode_seconds = Histogram(
            "vae_serve_decode_seconds",
            "Wall time of a decoder call, by bundle.",
            ["bundle"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_rows = Gauge(
            "vae_serve_queue_rows",
            "Rows waiting for a decoder call, by bundle.",
            ["bundle"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            "vae_serve_rejected", "Requests refused with 503, by reason.", ["reason"], registry=self.registry
        )
        # labels() takes a lock and builds a key on every call: each answer's children are looked up once
        self._answers: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def answered(self, route: str, status: int, seconds: float) -> None:
        children = self._answers.get((route, status))
        if children is None:
            children = self.requests.labels(route, str(status)), self.latency.labels(route)
            self._answers[route, status] = children
        children[0].inc()
        children[1].observe(seconds)

    def queue_counter(self, bundle: str) -> Callable[[int], None]:
        return self.queue_rows.labels(bundle).set

    def batch_counter(self, bundle: str) -> Callable[[int, float], None]:
        rows, seconds = self.batch_rows.labels(bundle), self.decode_seconds.labels(bundle)

        def observe(batch_rows: int, batch_seconds: float) -> None:
            rows.observe(batch_rows)
            seconds.observe(batch_seconds)

        return observe

    def text(self) -> bytes:
        if MULTIPROCESS not in os.environ:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker)  # type: ignore[no-untyped-call]
        return generate_latest(every_worker)
