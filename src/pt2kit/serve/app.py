"""The ASGI app: Open Inference Protocol v2 REST routes over `ModelService`s and a backend.

`create_app(services, backend=...)` returns a FastAPI app. The backend is anything with `start()`, `stop()` and
`infer(service, request)` coroutines (`Backend`): the asyncio `DynamicBatcher` by default. Every error is one line of
JSON, `{"error": "..."}`, with a 4xx status for anything the client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Protocol, Sequence

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from pt2kit import progress
from pt2kit.serve.batcher import DynamicBatcher, QueueFullError
from pt2kit.serve.metrics import ServeMetrics
from pt2kit.serve.protocol import HEADER_LENGTH, InferRequest, RequestError, encode_infer_response, model_metadata, parse_infer_request
from pt2kit.serve.service import ModelService

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


class Backend(Protocol):
    """What runs requests: the asyncio `DynamicBatcher`, or another (e.g. Ray Serve's `@serve.batch`)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def infer(self, service: ModelService, request: InferRequest) -> dict[str, torch.Tensor]: ...


@dataclass
class ServerState:
    """What the routes share: the models, the backend, the metrics, and whether the server takes requests."""

    services: dict[str, ModelService]
    backend: Backend
    metrics: ServeMetrics
    max_body_bytes: int
    warm_up: bool
    ready: bool = False
    draining: bool = False


def error(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    """`{"error": message}` on one line."""
    body = json.dumps({"error": " ".join(str(message).split())}) + "\n"
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def create_app(services: Sequence[ModelService], *, backend: Backend | None = None, metrics: ServeMetrics | None = None,
               max_queue_delay_ms: float = 0.0, max_queue: int = 1024,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, warm_up: bool = True) -> FastAPI:
    """The ASGI app serving `services` over the Open Inference Protocol v2.

    Args:
        services: the models (from `load_services`); only these are ever served.
        backend: what runs requests; default a `DynamicBatcher` with the queue options below.
        metrics: the Prometheus metrics (default: a fresh registry for these models).
        max_queue_delay_ms, max_queue: options of the default backend.
        max_body_bytes: larger bodies are refused with 413.
        warm_up: run each model once on zeros at start-up; `/v2/health/ready` says 200 only after.

    Returns:
        A FastAPI app; serve it with uvicorn (`pt2kit.serve.run_server` does, with graceful SIGTERM).

    Example:
        >>> app = create_app(load_services(["mlp.aoti.pt2"]))
        >>> uvicorn.run(app, host="127.0.0.1", port=8000)
    """
    metrics = metrics or ServeMetrics([s.name for s in services])
    backend = backend or DynamicBatcher(services, max_queue_delay_ms=max_queue_delay_ms, max_queue=max_queue, metrics=metrics)
    state = ServerState({s.name: s for s in services}, backend, metrics, max_body_bytes, warm_up)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await state.backend.start()
        warming = asyncio.create_task(_warm_up(state))
        try:
            yield
        finally:
            state.draining, state.ready = True, False
            warming.cancel()
            await state.backend.stop()

    app = FastAPI(title="pt2kit serve", version="2", lifespan=lifespan,
                  description="Open Inference Protocol v2 (KServe / Triton) over pt2kit artifacts, with dynamic batching.")
    app.state.pt2kit = state
    _add_error_handlers(app)
    _add_routes(app, state)
    return app


async def _warm_up(state: ServerState) -> None:
    for service in state.services.values():
        if state.warm_up:
            try:
                await asyncio.to_thread(service.warm_up)
            except Exception as exc:  # a model that fails on zeros may still serve real inputs: say so, do not stop
                progress.info(f"warm-up of `{service.name}` failed ({type(exc).__name__}: {str(exc).strip()[:200]}); serving it cold")
        service.ready = True
    state.ready = not state.draining
    progress.info("ready: " + ", ".join(state.services))


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.detail, exc.status_code, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        return error(f"bad request: {first.get('msg', 'invalid')} at {'.'.join(map(str, first.get('loc', ())))}", 400)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):  # a bug: say so in one line, never a traceback page
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        progress.info(f"error: {request.method} {request.url.path}: {type(exc).__name__}: {first}")
        return error(f"internal error: {type(exc).__name__}", 500)


_INFER_SCHEMA = {
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["inputs"], "properties": {
                "id": {"type": "string"},
                "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}},
                "inputs": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["name", "shape", "datatype"], "properties": {
                        "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                        "datatype": {"type": "string", "enum": ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "BF16", "FP32", "FP64"]},
                        "data": {"type": "array"}, "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer"}}}}}},
                "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"}, "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}}}}}}}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                                "description": "JSON header (its length in Inference-Header-Content-Length) then raw tensors"}}}},
    "responses": {"200": {"description": "outputs: {model_name, id, outputs: [{name, datatype, shape, data}]}"},
                  "400": {"description": "{\"error\": ...}: the request does not fit the model"},
                  "404": {"description": "unknown model"}, "413": {"description": "body too large"},
                  "503": {"description": "queue full or not ready; see Retry-After"}},
}


def _add_routes(app: FastAPI, state: ServerState) -> None:
    def json_response(payload: dict, status: int = 200) -> Response:
        return Response(json.dumps(payload), status_code=status, media_type="application/json")

    @app.get("/v2/health/live", summary="The server is up")
    async def live():
        return json_response({"live": True})

    @app.get("/v2/health/ready", summary="Every model is loaded and warmed")
    async def ready():
        return json_response({"ready": state.ready}, 200 if state.ready else 503)

    @app.get("/v2", summary="Server metadata")
    async def server_metadata():
        return json_response({"name": "pt2kit", "version": _version(), "extensions": ["binary_tensor_data"]})

    @app.get("/v2/models/{name}", summary="Model metadata from its manifest")
    async def metadata(name: str):
        service = state.services.get(name)
        if service is None:
            return _unknown(state, name)
        return json_response(model_metadata(name, service.manifest, service.platform))

    @app.get("/v2/models/{name}/ready", summary="The model is loaded and warmed")
    async def model_ready(name: str):
        service = state.services.get(name)
        if service is None:
            return _unknown(state, name)
        ok = service.ready and not state.draining
        return json_response({"name": name, "ready": ok}, 200 if ok else 503)

    @app.post("/v2/models/{name}/infer", summary="Run the model (Open Inference Protocol v2)", openapi_extra=_INFER_SCHEMA)
    async def infer(name: str, request: Request):
        start = time.perf_counter()
        service = state.services.get(name)
        if service is None:
            response = _unknown(state, name)
        else:
            response = await _infer(state, service, request)
        state.metrics.request(name, response.status_code, time.perf_counter() - start)
        return response

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics():
        return Response(state.metrics.render(), media_type=state.metrics.content_type)


def _unknown(state: ServerState, name: str) -> Response:
    return error(f"unknown model `{name[:80]}`; this server serves: {', '.join(state.services)}", 404)


async def _infer(state: ServerState, service: ModelService, request: Request) -> Response:
    if state.draining:
        return error("the server is shutting down; retry on another replica", 503, {"Retry-After": "1"})
    if not service.ready:
        return error(f"model `{service.name}` is still warming up; retry shortly", 503, {"Retry-After": "1"})
    body = await _read_body(request, state.max_body_bytes)
    if isinstance(body, Response):
        return body
    try:
        checked = parse_infer_request(body, service.manifest, header_length=request.headers.get(HEADER_LENGTH),
                                      batch_dim=service.batch_dim.position if service.batch_dim else None)
        outputs = await state.backend.infer(service, checked)
    except RequestError as exc:
        return error(str(exc), exc.status)
    except QueueFullError as exc:
        return error(str(exc), 503, {"Retry-After": str(exc.retry_after)})
    content, headers = encode_infer_response(service.name, checked, outputs)
    return Response(content, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes | Response:
    """The body, or a 413 as soon as it is known to be over `limit` (never buffered past it)."""
    declared = request.headers.get("content-length")
    too_large = error(f"the body is over the limit of {limit} bytes; send smaller batches or start the server with a larger "
                      "`--max-body-mb`", 413)
    if declared is not None:
        if not declared.isdigit():
            return error("header `Content-Length` must be a number", 400)
        if int(declared) > limit:
            return too_large
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return too_large
            chunks.append(chunk)
    except ClientDisconnect:
        return error("the client closed the connection before sending the whole body", 400)
    return b"".join(chunks)


def _version() -> str:
    from pt2kit import __version__

    return __version__
