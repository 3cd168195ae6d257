"""The vae-serve ASGI app: the Generator's generate, decode and encode as JSON routes, with continuous
batching.

Every client mistake is a 4xx with {"error": "<one line>"} and no traceback: unknown bundle 404,
malformed or out-of-range input 422, a body or image too large 413, a wrong method 405. A full queue,
an expired deadline or a draining server is 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from vae_runtime.errors import TooLargeError, VaeDigitsError
from vae_runtime.serve.batcher import ExpiredError, QueueFullError
from vae_runtime.serve.metrics import Metrics
from vae_runtime.serve.replies import error_response
from vae_runtime.serve.routes import NOOP_ROUTE, bench_router, router
from vae_runtime.serve.schemas import Error
from vae_runtime.serve.service import Service, UnknownBundleError
from vae_runtime.serve.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ROUTES = ("/v1/generate", "/v1/decode", "/v1/encode", "/v1/bundles", "/healthz", "/readyz", "/metrics")
JSON_ROUTES = ("/v1/generate", "/v1/decode", NOOP_ROUTE)
JSON_TYPE = (b"content-type", b"application/json")
RETRY_AFTER = "1"


def create_app(settings: Settings) -> FastAPI:
    """The app; loads and checks the bundles now (a bad --bundle fails here, before the server starts)."""
    service = Service(settings, Metrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        warming = asyncio.create_task(asyncio.to_thread(service.warm))
        yield
        await warming
        await service.stop()

    app = FastAPI(
        title="vae-serve",
        summary="Handwritten digits from vae-digits bundles, with continuous batching.",
        version=_version(),
        lifespan=lifespan,
        responses={status: {"model": Error} for status in (404, 413, 422, 503)},
    )
    app.state.service = service
    _add_error_handlers(app, service)
    app.include_router(router)
    if settings.bench_routes:
        app.include_router(bench_router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
        )
    app.add_middleware(Guard, service=service)
    return app


def _add_error_handlers(app: FastAPI, service: Service) -> None:
    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        if error.status_code == 404:
            return error_response(404, f"no route {request.url.path}; see /docs")
        if error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
            return error_response(405, message, error.headers)
        if error.status_code == 400:  # a body FastAPI could not parse, e.g. an integer of 5,000 digits
            return error_response(422, "the body is not valid JSON")
        return error_response(error.status_code, str(error.detail), error.headers)

    async def validation_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return error_response(422, _first_problem(error.errors()))

    async def input_error(request: Request, error: Exception) -> Response:
        status = (
            404 if isinstance(error, UnknownBundleError) else 413 if isinstance(error, TooLargeError) else 422
        )
        return error_response(status, str(error))

    async def overloaded(request: Request, error: Exception) -> Response:
        reason = "queue_full" if isinstance(error, QueueFullError) else "deadline"
        service.metrics.rejected.labels(reason).inc()
        return error_response(503, f"overloaded: {error}; retry later", {"Retry-After": RETRY_AFTER})

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
            return error_response(
                503, "the server is shutting down", {"Retry-After": RETRY_AFTER, "Connection": "close"}
            )
        declared = dict(scope["headers"]).get(b"content-length")
        limit = self.service.settings.max_body
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return error_response(413, f"the body is {int(declared):,} bytes; at most {limit:,} are read")
        return None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vae-digits")
    except PackageNotFoundError:
        return "0"
