"""uvicorn with a drain: on SIGTERM or Ctrl+C new requests get 503 while those in flight finish, then
the process exits 0 (plain uvicorn re-raises the signal after its shutdown, so the exit code says killed).

With several workers, a supervisor reserves the port and starts the worker processes, each listening
on it with a socket of its own (SO_REUSEPORT: the kernel spreads new connections evenly over them; one
shared socket would hand most of them to whichever worker wakes first). It passes SIGTERM and Ctrl+C on
to every worker once, and exits 0 when all of them drained and exited 0.
"""

from __future__ import annotations

import logging
import logging.config
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from types import FrameType

import uvicorn

from vae_runtime.errors import VaeDigitsError
from vae_runtime.serve.app import create_app
from vae_runtime.serve.metrics import MULTIPROCESS
from vae_runtime.serve.service import Service, load_bundles
from vae_runtime.serve.settings import Settings

BACKLOG = 4096  # connections the kernel holds before a worker accepts them
log = logging.getLogger("uvicorn.error")  # printed with uvicorn's own lines


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, service: Service, drain_seconds: int):
        super().__init__(config)
        self.service = service
        self.drain_seconds = drain_seconds
        self.drain_deadline = 0.0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.service.draining:  # a second signal: stop now
            self.should_exit = self.force_exit = True
            return
        log.info("%s: draining %d request(s) in flight", signal.Signals(sig).name, self.service.in_flight)
        self.service.draining = True
        self.drain_deadline = time.monotonic() + self.drain_seconds

    async def on_tick(self, counter: int) -> bool:
        if self.service.draining and (self.service.in_flight == 0 or time.monotonic() > self.drain_deadline):
            self.should_exit = True
        return await super().on_tick(counter)


def serve(
    settings: Settings,
    host: str,
    port: int,
    workers: int = 1,
    access_log: bool = False,
    drain_seconds: int = 30,
) -> int:
    """Load the bundles, then serve until SIGTERM or Ctrl+C; the exit code."""
    if workers > 1:
        return _supervise(settings, host, port, workers, access_log, drain_seconds)
    app = create_app(settings)
    config = _config(app, host, port, access_log, drain_seconds)
    DrainingServer(config, app.state.service, drain_seconds).run()
    return 0


def _config(app: object, host: str, port: int, access_log: bool, drain_seconds: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]  # an ASGI app (uvicorn's own annotation is a union of protocols)
        host=host,
        port=port,
        access_log=access_log,
        log_level="info",
        timeout_graceful_shutdown=drain_seconds,
        backlog=BACKLOG,
    )


def _supervise(
    settings: Settings, host: str, port: int, workers: int, access_log: bool, drain_seconds: int
) -> int:
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)  # as each worker's uvicorn logs
    load_bundles(settings.bundles)  # a bad --bundle fails here, in one line, before any worker starts
    metrics_dir = tempfile.mkdtemp(prefix="vae-serve-metrics-")
    os.environ[MULTIPROCESS] = metrics_dir  # the workers inherit it: /metrics sums them all
    reserved = _socket(host, port)  # bound, not listening: it takes no connections, and holds --port 0's pick
    address = reserved.getsockname()[:2]
    spawn = multiprocessing.get_context("spawn")
    processes = [
        spawn.Process(target=_worker, args=(settings, address, access_log, drain_seconds), daemon=False)
        for _ in range(workers)
    ]
    stopping = False

    def stop(sig: int, frame: FrameType | None) -> None:
        nonlocal stopping
        log.info("%s: stopping %d worker(s)", signal.Signals(sig).name, workers)
        stopping = True
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for process in processes:
            process.start()
        log.info("started %d workers on http://%s:%d", workers, *address)
        while any(process.is_alive() for process in processes):
            failed = [p for p in processes if p.exitcode not in (None, 0)]
            if failed and not stopping:
                log.error("a worker exited with code %s: stopping the others", failed[0].exitcode)
                stop(signal.SIGTERM, None)
            time.sleep(0.2)
    finally:
        reserved.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0 if all(process.exitcode == 0 for process in processes) else 1


def _socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT, which every worker's socket shares."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    bound = socket.socket(family, socket.SOCK_STREAM)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        bound.bind((host, port))
    except OSError as error:
        bound.close()
        raise VaeDigitsError(f"cannot listen on {host}:{port} ({error.strerror})") from None
    return bound


def _worker(settings: Settings, address: tuple[str, int], access_log: bool, drain_seconds: int) -> None:
    os.setpgrp()  # Ctrl+C reaches the supervisor alone, which passes it on once
    try:
        app = create_app(settings)
        listener = _socket(*address)
    except VaeDigitsError as error:
        print(f"vae-serve: error: {error}", file=sys.stderr)
        sys.exit(2)
    listener.listen(BACKLOG)
    config = _config(app, *address, access_log, drain_seconds)
    DrainingServer(config, app.state.service, drain_seconds).run(sockets=[listener])
