"""vae-serve's routes, on one APIRouter; each takes the process's `Service` as a dependency.

The small JSON answers are pydantic models, so that `response_model` checks what goes out. The digits
are the exception: checking 800,000 numbers of a large answer would cost more than decoding them, so
those routes return the bytes that `replies` encodes, and their models document the schema.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from vae_runtime.errors import VaeDigitsError
from vae_runtime.images import grid_columns, read_digit
from vae_runtime.inputs import parse_label
from vae_runtime.serve.replies import digits_response, error_response, json_response
from vae_runtime.serve.schemas import (
    BundleInfo,
    DecodeRequest,
    Digits,
    Encoded,
    Error,
    GenerateRequest,
    Status,
)
from vae_runtime.serve.service import Served, Service

NOOP_ROUTE = "/v1/noop"  # --bench-routes: the framework's own ceiling, for bench/serve.py

_BINARY: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}, "application/octet-stream": {}}}
}
_IMAGE_BODY = {
    "required": True,
    "content": {
        kind: {"schema": {"type": "string", "format": "binary"}} for kind in ("image/png", "image/jpeg")
    },
}


async def the_service(request: Request) -> Service:  # async: FastAPI runs a sync one on a thread
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(the_service)]
router = APIRouter()
bench_router = APIRouter()  # included with --bench-routes only


@router.post("/v1/generate", response_model=Digits, responses=_BINARY)
async def generate(body: GenerateRequest, service: ServiceDep) -> Response:
    """Digits drawn as `Generator.generate` draws them: the same body gives the same digits."""
    served = service.bundle(body.bundle)
    g = served.generator
    latents = g.sample(body.labels, count=body.count, seed=body.seed, temperature=body.temperature)
    images = await service.decode(served, latents)
    labels = _label_names(served, latents.label_ids) if body.format == "json" else None
    columns = grid_columns(body.count, g.manifest.conditional)
    return await digits_response(served.name, labels, images, True, body.format, columns)


@router.post("/v1/decode", response_model=Digits, responses=_BINARY)
async def decode(body: DecodeRequest, service: ServiceDep) -> Response:
    """Latents to digits: grey levels as generate gives them, or the decoder's floats."""
    if body.format == "png" and body.values == "float":
        raise VaeDigitsError('format "png" takes grey levels: leave "values" at "grey"')
    served = service.bundle(body.bundle)
    latents = served.generator.latents(body.z, body.labels)
    images = await service.decode(served, latents)
    labels = _label_names(served, latents.label_ids) if body.format == "json" else None
    columns = grid_columns(len(latents), False)
    return await digits_response(served.name, labels, images, body.values == "grey", body.format, columns)


@router.post("/v1/encode", openapi_extra={"requestBody": _IMAGE_BODY})
async def encode(
    request: Request,
    service: ServiceDep,
    bundle: str | None = Query(None, description="A bundle this server loaded (default: its first)."),
    label: str | None = Query(None, description="The digit the image shows (a CVAE needs it)."),
) -> Encoded:
    """One digit's image (PNG, JPEG, BMP or WebP; any size, any polarity) to its latent."""
    served = service.bundle(bundle)
    data = await request.body()
    labels = parse_label(label)
    digit = await run_in_threadpool(read_digit, data)
    z_mean, z_log_var = await run_in_threadpool(served.generator.encode, digit[None], labels)
    return Encoded(bundle=served.name, z_mean=z_mean[0].tolist(), z_log_var=z_log_var[0].tolist())


@router.get("/v1/bundles")
async def bundles(service: ServiceDep) -> list[BundleInfo]:
    """The bundles this server loaded; the first is the default."""
    return [_describe(served, served.name == service.default) for served in service.bundles.values()]


@router.get("/healthz")
async def healthz() -> Status:
    """Alive."""
    return Status(status="alive")


@router.get("/readyz", response_model=Status, responses={503: {"model": Error}})
async def readyz(service: ServiceDep) -> Response | Status:
    """Ready: every bundle loaded and warm."""
    if not service.ready:
        return error_response(503, "warming up: the models are being opened")
    return Status(status="ready")


@router.get("/metrics", response_class=Response)
async def metrics(service: ServiceDep) -> Response:
    """Prometheus text: requests by route and status, latency, batch sizes, queue depth, rejections."""
    return Response(service.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")


@bench_router.post(NOOP_ROUTE, include_in_schema=False)
async def noop(body: GenerateRequest, service: ServiceDep) -> Response:
    """The same stack without the model: what the framework itself answers."""
    return json_response({"bundle": service.bundle(body.bundle).name, "digits": []})


def _label_names(served: Served, label_ids: Any) -> list[str] | None:
    names = served.generator.manifest.labels
    return None if label_ids is None else [names[i] for i in label_ids]


def _describe(served: Served, default: bool) -> BundleInfo:
    manifest = served.generator.manifest
    return BundleInfo(
        name=served.name,
        kind=manifest.kind,
        latent_dim=manifest.latent_dim,
        labels=list(manifest.labels),
        default_temperature=manifest.default_temperature,
        default=default,
    )
