"""uvicorn with a drain: on SIGTERM or Ctrl+C new requests get 503 while those in flight finish, then
the process exits 0 (plain uvicorn re-raises the signal after its shutdown, so the exit code says killed)."""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import uvicorn

from vae_runtime.serve.app import Service, Settings, create_app

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
    settings: Settings, host: str, port: int, access_log: bool = False, drain_seconds: int = 30
) -> None:
    """Load the bundles, then serve until SIGTERM or Ctrl+C."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=access_log,
        log_level="info",
        timeout_graceful_shutdown=drain_seconds,
        backlog=4096,
    )
    DrainingServer(config, app.state.service, drain_seconds).run()
