"""`vae-serve`: the runtime as an HTTP API that batches concurrent requests.

Needs the serve extra: pip install "vae-digits[serve]".
"""

from __future__ import annotations

from typing import Annotated

import typer

from vae_runtime.clikit.common import Version, integer, main, new_app, number
from vae_runtime.errors import VaeDigitsError
from vae_runtime.serve.settings import DEFAULTS, Settings

EXAMPLES = """[b]Examples[/b]

  vae-serve
  vae-serve --bundle cvae-16d --bundle bundles/mine --port 8080
  vae-serve --max-batch 128 --max-queue 2048 --workers 2
  vae-serve --host 0.0.0.0 --cors-origin https://example.org

  curl -s localhost:8000/v1/generate -d '{"labels": [7], "count": 16, "format": "png"}' -o 7s.png
"""

app = new_app("Serve digits over HTTP: generate, decode, encode, with continuous batching.")


@app.command(epilog=EXAMPLES)
def serve(
    bundle: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME|DIR",
            help="A bundle to serve, repeatable; the first is the default. "
            "Default: every embedded bundle, the runtime's default first.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 serves other machines.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(parser=integer(0, 65535), help="TCP port (0: any free one).")] = 8000,
    max_batch: Annotated[
        int, typer.Option(parser=integer(1, 4096), help="Most rows per decoder call.")
    ] = DEFAULTS.max_batch,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            parser=number(0, 1000),
            help="How long an idle decoder waits for more requests to share its call "
            "(0: none; requests that arrive during a call always share the next one).",
        ),
    ] = DEFAULTS.max_wait_ms,
    max_queue: Annotated[
        int,
        typer.Option(
            parser=integer(1, 1_000_000),
            help="Rows that may wait per bundle (past it: 503 + Retry-After); the most digits per request.",
        ),
    ] = DEFAULTS.max_queue,
    no_batching: Annotated[
        bool, typer.Option("--no-batching", help="Every request in its own decoder call (the baseline).")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(parser=number(0.001, 3600), help="Seconds a request may wait in the queue; then 503."),
    ] = DEFAULTS.timeout,
    max_body: Annotated[
        int,
        typer.Option(
            parser=integer(1, 1 << 30), help="Largest request body in bytes, images included; then 413."
        ),
    ] = DEFAULTS.max_body,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            metavar="ORIGIN",
            help="Allow browsers on this origin, repeatable. Default: CORS off.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            parser=integer(1, 64),
            help="Processes serving the one port, each with its own batcher and models; /metrics sums them.",
        ),
    ] = 1,
    drain_seconds: Annotated[
        int, typer.Option(parser=integer(0, 3600), help="On SIGTERM, seconds requests in flight may take.")
    ] = 30,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (costs throughput).")
    ] = False,
    bench_routes: Annotated[bool, typer.Option("--bench-routes", hidden=True)] = False,
    version: Version = False,
) -> int:
    """Serve POST /v1/generate, /v1/decode, /v1/encode and GET /v1/bundles, /healthz, /readyz, /metrics.

    The OpenAPI schema is at /openapi.json, its browsable form at /docs.
    """
    try:
        from vae_runtime.serve.server import serve as run_server
    except ImportError as error:
        raise VaeDigitsError(
            f'vae-serve needs the serve extra: pip install "vae-digits[serve]" ({error})'
        ) from None
    settings = Settings(
        bundles=tuple(bundle or ()),
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        batching=not no_batching,
        max_body=max_body,
        timeout=timeout,
        cors_origins=tuple(cors_origin or ()),
        bench_routes=bench_routes,
    )
    return run_server(settings, host, port, workers, access_log=access_log, drain_seconds=drain_seconds)


def run() -> None:
    main(app)
