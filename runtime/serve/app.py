"""The vae-serve ASGI app: the Generator's generate, decode and encode as JSON routes, with dynamic batching.

Every client mistake is a 4xx with {"error": "<one line>"} and no traceback: unknown bundle 404,
malformed or out-of-range input 422, a body or image too large 413, a wrong method 405. A full queue,
an expired deadline or a draining server is 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from vae_runtime.bundle import EMBEDDED_BUNDLES, embedded_bundle
from vae_runtime.engine import BULK_ROWS, Latents
from vae_runtime.errors import TooLargeError, VaeDigitsError
from vae_runtime.generator import Generator
from vae_runtime.images import grey_levels, grid, grid_columns, png_bytes, read_digit
from vae_runtime.inputs import parse_label
from vae_runtime.serve.batcher import Batcher, ExpiredError, QueueFullError
from vae_runtime.serve.metrics import Metrics
from vae_runtime.serve.schemas import BundleInfo, DecodeRequest, Digits, Encoded, Error, GenerateRequest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ROUTES = ("/v1/generate", "/v1/decode", "/v1/encode", "/v1/bundles", "/healthz", "/readyz", "/metrics")
NOOP_ROUTE = "/v1/noop"  # --bench-routes: the framework's own ceiling, for bench/serve.py
JSON_ROUTES = ("/v1/generate", "/v1/decode", NOOP_ROUTE)
JSON_TYPE = (b"content-type", b"application/json")
RETRY_AFTER = "1"
log = logging.getLogger("uvicorn.error")  # printed with uvicorn's own lines


@dataclass(frozen=True)
class Settings:
    """What `vae-serve` was started with (see its --help)."""

    bundles: tuple[str, ...] = ()  # NAME or DIR; empty: the embedded bundles, the default one first
    max_batch: int = 256
    max_wait_ms: float = 2.0
    max_queue: int = 1024
    batching: bool = True
    max_body: int = 1 << 20
    timeout: float = 10.0
    cors_origins: tuple[str, ...] = ()
    bench_routes: bool = False


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
        batcher = Batcher(
            generator.decode_batch,
            max_batch=settings.max_batch,
            max_wait=settings.max_wait_ms / 1000,
            max_queue=settings.max_queue,
            batching=settings.batching,
            calls=1 if settings.batching else generator.workers,
            on_batch=self.metrics.batch_counter(name),
        )
        self.metrics.watch_queue(name, lambda: batcher.waiting_rows)
        return batcher

    def bundle(self, name: str | None) -> Served:
        served = self.bundles.get(self.default if name is None else name)
        if served is None:
            raise UnknownBundleError(f"unknown bundle {name!r}; this server has {', '.join(self.bundles)}")
        return served

    def check_rows(self, latents: Latents) -> None:
        if len(latents) > self.settings.max_queue:
            raise VaeDigitsError(
                f"the request asks for {len(latents)} digits; this server takes at most "
                f"{self.settings.max_queue} per request (--max-queue)"
            )

    async def decode(self, served: Served, latents: Latents) -> np.ndarray:
        self.check_rows(latents)
        return await served.batcher.run(latents, time.monotonic() + self.settings.timeout)

    def warm(self) -> None:
        """Open every model and settle the bulk route's measurement before the first request needs it."""
        for served in self.bundles.values():
            g = served.generator
            label = 0 if g.info.conditional else None
            g.generate(label, count=BULK_ROWS if g.bulk else 1, seed=0)
            g.encode(np.zeros((1, 28, 28), np.uint8), label)
        self.ready = True
        log.info("ready: %s", ", ".join(self.bundles))


def load_bundles(bundles: tuple[str, ...]) -> list[Generator]:
    """The Generators for --bundle values; none given: every embedded bundle, the runtime's default first."""
    if bundles:
        return [Generator.load(bundle) for bundle in bundles]
    default = embedded_bundle()
    others = [embedded_bundle(name) for name in EMBEDDED_BUNDLES if embedded_bundle(name) != default]
    return [Generator.load(path) for path in (default, *others)]


def create_app(settings: Settings) -> FastAPI:
    """The app; loads and checks the bundles now (a bad --bundle fails here, before the server starts)."""
    metrics = Metrics()
    service = Service(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for served in service.bundles.values():
            served.batcher.start()
        warming = asyncio.create_task(asyncio.to_thread(service.warm))
        yield
        await warming
        for served in service.bundles.values():
            await served.batcher.stop()

    app = FastAPI(
        title="vae-serve",
        summary="Handwritten digits from vae-digits bundles, with dynamic batching.",
        version=_version(),
        lifespan=lifespan,
        responses={
            422: {"model": Error},
            404: {"model": Error},
            413: {"model": Error},
            503: {"model": Error},
        },
    )
    app.state.service = service
    _add_error_handlers(app, metrics)
    _add_routes(app, service)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
        )
    app.add_middleware(Guard, service=service)
    return app


def _add_routes(app: FastAPI, service: Service) -> None:
    @app.post("/v1/generate", response_model=Digits, responses={200: {"content": _BINARY}})
    async def generate(body: GenerateRequest) -> Response:
        """Digits drawn as `Generator.generate` draws them: the same body gives the same digits."""
        served = service.bundle(body.bundle)
        g = served.generator
        latents = g.sample(body.labels, count=body.count, seed=body.seed, temperature=body.temperature)
        digits = grey_levels(await service.decode(served, latents))
        return _reply(served, latents, digits, body.format, grid_columns(body.count, g.info.conditional))

    @app.post("/v1/decode", response_model=Digits, responses={200: {"content": _BINARY}})
    async def decode(body: DecodeRequest) -> Response:
        """Latents to digits: grey levels as generate gives them, or the decoder's floats."""
        if body.format == "png" and body.values == "float":
            raise VaeDigitsError('format "png" takes grey levels: leave "values" at "grey"')
        served = service.bundle(body.bundle)
        latents = served.generator.latents(body.z, body.labels)
        images = await service.decode(served, latents)
        values = grey_levels(images) if body.values == "grey" else images
        return _reply(served, latents, values, body.format, grid_columns(len(latents), False))

    @app.post("/v1/encode", response_model=Encoded, openapi_extra={"requestBody": _IMAGE_BODY})
    async def encode(
        request: Request,
        bundle: str | None = Query(None, description="A bundle this server loaded (default: its first)."),
        label: str | None = Query(None, description="The digit the image shows (a CVAE needs it)."),
    ) -> Response:
        """One digit's image (PNG, JPEG, BMP or WebP; any size, any polarity) to its latent."""
        served = service.bundle(bundle)
        data = await request.body()
        labels = parse_label(label)
        digit = await run_in_threadpool(read_digit, data)
        z_mean, z_log_var = await run_in_threadpool(served.generator.encode, digit[None], labels)
        reply = {"bundle": served.name, "z_mean": z_mean[0].tolist(), "z_log_var": z_log_var[0].tolist()}
        return _json(reply)

    @app.get("/v1/bundles", response_model=list[BundleInfo])
    async def bundles() -> Response:
        """The bundles this server loaded; the first is the default."""
        return _json(
            [_describe(served, served.name == service.default) for served in service.bundles.values()]
        )

    @app.get("/healthz")
    async def healthz() -> Response:
        """Alive."""
        return _json({"status": "alive"})

    @app.get("/readyz", responses={503: {"model": Error}})
    async def readyz() -> Response:
        """Ready: every bundle loaded and warm."""
        if not service.ready:
            return _json({"error": "warming up: the models are being opened"}, 503)
        return _json({"status": "ready"})

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Prometheus text: requests by route and status, latency, batch sizes, queue depth, rejections."""
        return Response(service.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    if service.settings.bench_routes:

        @app.post(NOOP_ROUTE, include_in_schema=False)
        async def noop(body: GenerateRequest) -> Response:
            """The same stack without the model: what the framework itself answers."""
            return _json({"bundle": service.bundle(body.bundle).name, "digits": []})


_BINARY: dict[str, dict[str, Any]] = {"image/png": {}, "application/octet-stream": {}}
_IMAGE_BODY = {
    "required": True,
    "content": {
        kind: {"schema": {"type": "string", "format": "binary"}} for kind in ("image/png", "image/jpeg")
    },
}


def _describe(served: Served, default: bool) -> dict[str, Any]:
    info = served.generator.info
    return BundleInfo(
        name=served.name,
        kind=info.kind,
        latent_dim=info.latent_dim,
        labels=list(info.labels),
        default_temperature=info.default_temperature,
        default=default,
    ).model_dump()


def _reply(served: Served, latents: Latents, values: np.ndarray, format: str, columns: int) -> Response:
    if format == "npy":
        buffer = io.BytesIO()
        np.save(buffer, values)
        return Response(buffer.getvalue(), media_type="application/octet-stream")
    if format == "png":
        return Response(png_bytes(grid(values, columns)), media_type="image/png")
    names = served.generator.info.labels
    labels = None if latents.label_ids is None else [names[i] for i in latents.label_ids]
    return _json(
        {"bundle": served.name, "labels": labels, "shape": list(values.shape), "digits": values.tolist()}
    )


def _json(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(content, separators=(",", ":")).encode()
    return Response(body, status, headers, media_type="application/json")


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return _json({"error": " ".join(message.split())}, status, headers)


def _add_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        if error.status_code == 404:
            return _error(404, f"no route {request.url.path}; see /docs")
        if error.status_code == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path}", error.headers)
        if error.status_code == 400:  # a body FastAPI could not parse, e.g. an integer of 5,000 digits
            return _error(422, "the body is not valid JSON")
        return _error(error.status_code, str(error.detail), error.headers)

    async def validation_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return _error(422, _first_problem(error.errors()))

    async def input_error(request: Request, error: Exception) -> Response:
        status = (
            404 if isinstance(error, UnknownBundleError) else 413 if isinstance(error, TooLargeError) else 422
        )
        return _error(status, str(error))

    async def overloaded(request: Request, error: Exception) -> Response:
        reason = "queue_full" if isinstance(error, QueueFullError) else "deadline"
        metrics.rejected.labels(reason).inc()
        return _error(503, f"overloaded: {error}; retry later", {"Retry-After": RETRY_AFTER})

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(VaeDigitsError, input_error)
    app.add_exception_handler(QueueFullError, overloaded)
    app.add_exception_handler(ExpiredError, overloaded)


def _first_problem(errors: Any) -> str:
    """pydantic's errors as one line: where and what, for the first of them."""
    first = errors[0]
    where = [str(part) for part in first["loc"][1:]] if first["loc"][:1] == ("body",) else []
    if first["type"] == "json_invalid":
        return f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'decode error')})"
    if not where:
        return f"the body must be a JSON object ({first['msg']})"
    given = json.dumps(first.get("input"))
    given = given if len(given) <= 40 else given[:37] + "..."
    return f"{where[0]}: {first['msg']}, not {given}"


class Guard:
    """Outermost: caps request bodies (413), answers 503 while draining, counts requests in flight, and
    records every answer's route, status and latency."""

    def __init__(self, app: ASGIApp, service: Service):
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = scope["path"] if scope["path"] in ROUTES or scope["path"] == NOOP_ROUTE else "other"
        status = 500
        received = 0
        limit = self.service.settings.max_body

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        async def receiving() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, f"the body is larger than {limit:,} bytes")
            return message

        refusal = self._refusal(scope)
        if route in JSON_ROUTES:  # these take JSON whatever the client calls it (`curl -d` says a form)
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-type"] + [JSON_TYPE]
        try:
            if refusal is not None:
                await refusal(scope, receive, sending)
            else:
                self.service.in_flight += 1
                try:
                    await self.app(scope, receiving, sending)
                finally:
                    self.service.in_flight -= 1
        finally:
            self.service.metrics.answered(route, status, time.perf_counter() - started)

    def _refusal(self, scope: Scope) -> Response | None:
        if self.service.draining:
            self.service.metrics.rejected.labels("draining").inc()
            return _error(
                503, "the server is shutting down", {"Retry-After": RETRY_AFTER, "Connection": "close"}
            )
        declared = dict(scope["headers"]).get(b"content-length")
        limit = self.service.settings.max_body
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _error(413, f"the body is {int(declared):,} bytes; at most {limit:,} are read")
        return None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vae-digits")
    except PackageNotFoundError:
        return "0"
