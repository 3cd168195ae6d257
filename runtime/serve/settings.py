"""What `vae-serve` runs with: the one place of the server's defaults (its CLI, app and batcher read them).

Imports nothing of the server's libraries, so that `vae-serve --help` stays fast and the plain runtime
install can show it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """What `vae-serve` was started with (see its --help)."""

    bundles: tuple[str, ...] = ()  # NAME or DIR; empty: the embedded bundles, the default one first
    max_batch: int = 256
    max_wait_ms: float = 0.0  # 0: continuous batching, an idle decoder takes a request at once
    max_queue: int = 1024
    batching: bool = True
    max_body: int = 1 << 20
    timeout: float = 10.0
    cors_origins: tuple[str, ...] = ()
    bench_routes: bool = False


DEFAULTS = Settings()
