"""The ASGI app: Open Inference Protocol v2 REST routes over `ModelService`s and a backend.

`create_app(services, backend=...)` returns a FastAPI app. The backend is anything with `start()`, `stop()` and
`infer(service, request)` coroutines (`Backend`): the asyncio `DynamicBatcher` by default. Every model route is also
served under `/v2/models/{name}/versions/1/...`; Triton's model configuration and statistics extensions are served
too (`pt2kit.serve.triton`). Every error is one line of JSON, `{"error": "..."}`, with a 4xx status for anything the
client sent and a 500 when the model itself raised (the server keeps serving).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from pt2kit import progress
from pt2kit.serve.batcher import DynamicBatcher, run_model
from pt2kit.serve.http_body import (OFF_LOOP_BYTES, COMPRESS_MIN_BYTES, BodyBudget, BodyError, accepted_encoding, compress,
                                    read_body, reservation)
from pt2kit.serve.metrics import ServeMetrics
from pt2kit.serve.protocol import HEADER_LENGTH, InferRequest, RequestError, encode_infer_response, model_metadata, parse_infer_request
from pt2kit.serve.service import ModelService
from pt2kit.serve.triton import model_config

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
EXTENSIONS = ["binary_tensor_data", "classification", "model_configuration", "statistics"]


class Backend(Protocol):
    """What runs requests: the asyncio `DynamicBatcher`, or another (e.g. Ray Serve's `@serve.batch`)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def infer(self, service: ModelService, request: InferRequest) -> dict[str, torch.Tensor]: ...


@dataclass
class ServerState:
    """What the routes (HTTP and gRPC) share: the models, the backend, the metrics, and whether the server takes requests.

    `cut_off` counts requests that were cancelled before their answer (a drain that timed out); `budget` bounds the
    bytes of request bodies being read at once (4 bodies of the largest size).
    """

    services: dict[str, ModelService]
    backend: Backend
    metrics: ServeMetrics
    max_body_bytes: int
    warm_up: bool
    max_queue_delay_ms: float = 0.0
    ready: bool = False
    draining: bool = False
    cut_off: int = 0
    budget: BodyBudget = field(default_factory=lambda: BodyBudget(4 * DEFAULT_MAX_BODY_BYTES))

    def unavailable(self, service: ModelService) -> RequestError | None:
        """Why `service` takes no request now (a 503), or None."""
        if self.draining:
            return RequestError("the server is shutting down; retry on another replica", 503)
        if service.warm_up_error:
            return RequestError(f"model `{service.name}` failed its warm-up ({service.warm_up_error}); fix the model and restart", 503)
        if not service.ready:
            return RequestError(f"model `{service.name}` is still warming up; retry shortly", 503)
        return None


def error(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    """`{"error": message}` on one line."""
    body = json.dumps({"error": " ".join(str(message).split())}) + "\n"
    if status == 503:
        headers = {"Retry-After": "1", **(headers or {})}
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def create_app(services: Sequence[ModelService], *, backend: Backend | None = None, metrics: ServeMetrics | None = None,
               max_queue_delay_ms: float = 0.0, max_queue: int = 1024,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, warm_up: bool = True, grpc_port: int | None = None,
               grpc_host: str = "127.0.0.1", drain_timeout_s: float = 30.0, grpc_reuse_port: bool = False) -> FastAPI:
    """The ASGI app serving `services` over the Open Inference Protocol v2.

    Args:
        services: the models (from `load_services`); only these are ever served.
        backend: what runs requests; default a `DynamicBatcher` with the queue options below.
        metrics: the Prometheus metrics and Triton statistics (default: a fresh registry for these models).
        max_queue_delay_ms, max_queue: options of the default backend.
        max_body_bytes: larger bodies (after inflating gzip or deflate) are refused with 413.
        warm_up: run each model once on zeros at start-up; `/v2/health/ready` says 200 only after, and never for a
            model whose warm-up raised.
        grpc_port: also serve `inference.GRPCInferenceService` on `grpc_host:grpc_port` (the `grpc` extra), on the
            same event loop, batcher and metrics; it stops within `drain_timeout_s` at shutdown.

    Returns:
        A FastAPI app; serve it with uvicorn (`pt2kit.serve.run_server` does, with graceful SIGTERM).

    Example:
        >>> app = create_app(load_services(["mlp.aoti.pt2"]))
        >>> uvicorn.run(app, host="127.0.0.1", port=8000)
    """
    metrics = metrics or ServeMetrics([s.name for s in services])
    backend = backend or DynamicBatcher(services, max_queue_delay_ms=max_queue_delay_ms, max_queue=max_queue, metrics=metrics)
    state = ServerState({s.name: s for s in services}, backend, metrics, max_body_bytes, warm_up, max_queue_delay_ms,
                        budget=BodyBudget(4 * max_body_bytes))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await state.backend.start()
        grpc_server = None
        if grpc_port is not None:
            from pt2kit.serve.grpc_app import start_grpc  # the grpc extra, only when asked for

            grpc_server = await start_grpc(state, grpc_host, grpc_port, EXTENSIONS, reuse_port=grpc_reuse_port)
        warming = asyncio.create_task(warm_up_all(state))
        try:
            yield
        finally:
            state.draining, state.ready = True, False
            warming.cancel()
            if grpc_server is not None:
                await grpc_server.stop(drain_timeout_s)
            await state.backend.stop()

    app = FastAPI(title="pt2kit serve", version="2", lifespan=lifespan,
                  description="Open Inference Protocol v2 (KServe / Triton) over pt2kit artifacts, with dynamic batching.")
    app.state.pt2kit = state
    _add_error_handlers(app)
    _add_routes(app, state)
    return app


async def warm_up_all(state: ServerState) -> None:
    """Warm each model up; one whose warm-up raises stays not ready (its requests get 503 saying why)."""
    for service in state.services.values():
        if service.warm_up_error:  # warmed (and failed) before the app was built
            continue
        if state.warm_up and not await asyncio.to_thread(service.try_warm_up):
            continue
        service.ready = True
    state.ready = not state.draining and all(s.ready for s in state.services.values())
    failed = [s.name for s in state.services.values() if not s.ready]
    progress.info("ready: " + ", ".join(state.services) if not failed else f"not ready: {', '.join(failed)} failed the warm-up")


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
                "id": {"type": "string"}, "model_name": {"type": "string"}, "model_version": {"type": "string"},
                "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}},
                "inputs": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["name", "shape", "datatype"], "properties": {
                        "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                        "datatype": {"type": "string", "enum": ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "BF16", "FP32", "FP64"]},
                        "data": {"type": "array"}, "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer"}}}}}},
                "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"}, "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}, "classification": {"type": "integer", "minimum": 1}}}}}}}}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                                "description": "JSON header (its length in Inference-Header-Content-Length) then raw tensors"}}}},
    "responses": {"200": {"description": "outputs: {model_name, id, outputs: [{name, datatype, shape, data}]}"},
                  "400": {"description": "{\"error\": ...}: the request does not fit the model"},
                  "404": {"description": "unknown model or version"}, "413": {"description": "body too large"},
                  "415": {"description": "a Content-Encoding other than gzip or deflate"},
                  "500": {"description": "{\"error\": ...}: the model raised"},
                  "503": {"description": "queue full or not ready; see Retry-After"}},
}


def _add_routes(app: FastAPI, state: ServerState) -> None:
    def json_response(payload: dict, status: int = 200) -> Response:
        return Response(json.dumps(payload), status_code=status, media_type="application/json")

    def model_route(method: str, suffix: str, **kwargs):
        """Register a model route at /v2/models/{name}{suffix} and /v2/models/{name}/versions/{version}{suffix}."""
        def register(handler):
            for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
                app.add_api_route(prefix + suffix, handler, methods=[method], include_in_schema="versions" not in prefix, **kwargs)
            return handler
        return register

    def find(name: str, version: str) -> ModelService | Response:
        service = state.services.get(name)
        if service is None:
            return _unknown(state, name)
        if version != "1":
            return error(f"model `{name}` has no version `{version[:20]}`; this server serves version 1 only", 404)
        return service

    @app.get("/v2/health/live", summary="The server is up")
    async def live():
        return json_response({"live": True})

    @app.get("/v2/health/ready", summary="Every model is loaded and warmed")
    async def ready():
        return json_response({"ready": state.ready}, 200 if state.ready else 503)

    @app.get("/v2", summary="Server metadata")
    async def server_metadata():
        return json_response({"name": "pt2kit", "version": _version(), "extensions": EXTENSIONS})

    @app.get("/v2/models/stats", summary="Triton statistics of every model")
    async def all_stats():
        return json_response({"model_stats": [state.metrics.stats[name].to_json() for name in state.services]})

    @model_route("GET", "", summary="Model metadata from its manifest")
    async def metadata(name: str, version: str = "1"):
        service = find(name, version)
        if isinstance(service, Response):
            return service
        return json_response(model_metadata(name, service.manifest, service.platform))

    @model_route("GET", "/ready", summary="The model is loaded and warmed")
    async def model_ready(name: str, version: str = "1"):
        service = find(name, version)
        if isinstance(service, Response):
            return service
        ok = service.ready and not state.draining
        return json_response({"name": name, "ready": ok}, 200 if ok else 503)

    @model_route("GET", "/config", summary="Triton's model configuration (max_batch_size, dims, dynamic_batching)")
    async def config(name: str, version: str = "1"):
        service = find(name, version)
        if isinstance(service, Response):
            return service
        return json_response(model_config(service, max_queue_delay_ms=state.max_queue_delay_ms))

    @model_route("GET", "/stats", summary="Triton's statistics of the model (counts, queue and compute nanoseconds)")
    async def stats(name: str, version: str = "1"):
        service = find(name, version)
        if isinstance(service, Response):
            return service
        return json_response({"model_stats": [state.metrics.stats[name].to_json()]})

    @model_route("POST", "/infer", summary="Run the model (Open Inference Protocol v2)", openapi_extra=_INFER_SCHEMA)
    async def infer(name: str, request: Request, version: str = "1"):
        start = time.perf_counter()
        service = find(name, version)
        try:
            response = service if isinstance(service, Response) else await _infer(state, service, request)
        except asyncio.CancelledError:  # uvicorn cut it off when the drain timed out: answer, if the client still listens
            state.cut_off += 1
            response = error("the server stopped before this request was answered (its drain timed out); retry", 503)
        state.metrics.request(name, response.status_code, time.perf_counter() - start)
        return response

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics():
        return Response(state.metrics.render(), media_type=state.metrics.content_type)


def _unknown(state: ServerState, name: str) -> Response:
    return error(f"unknown model `{name[:80]}`; this server serves: {', '.join(state.services)}", 404)


async def _infer(state: ServerState, service: ModelService, request: Request) -> Response:
    refused = state.unavailable(service)
    if refused is not None:
        return error(str(refused), refused.status)
    try:
        async with state.budget.reserve(reservation(request, state.max_body_bytes)):
            body = await read_body(request, state.max_body_bytes)
            parse = functools.partial(parse_infer_request, body, service.manifest, header_length=request.headers.get(HEADER_LENGTH),
                                      batch_dim=service.batch_dim.position if service.batch_dim else None, model=service.name)
            # a large JSON part takes milliseconds to decode: on a thread, so health checks and small requests go on;
            # binary tensor data is one copy, cheaper than the thread hand-off, so only the JSON part counts
            header_length = request.headers.get(HEADER_LENGTH, "")
            json_bytes = min(int(header_length), len(body)) if header_length.isdigit() else len(body)
            checked = await asyncio.to_thread(parse) if json_bytes >= OFF_LOOP_BYTES else parse()
        outputs = await run_model(state.backend, service, checked)
        content, headers = encode_infer_response(service.name, checked, outputs)
    except BodyError as exc:
        return error(str(exc), exc.status, {"Connection": "close"} if exc.close else None)
    except RequestError as exc:
        return error(str(exc), exc.status)
    encoding = accepted_encoding(request.headers.get("accept-encoding"))
    if encoding and len(content) >= COMPRESS_MIN_BYTES:
        content = await asyncio.to_thread(compress, content, encoding) if len(content) >= OFF_LOOP_BYTES else compress(content, encoding)
        headers = {**headers, "content-encoding": encoding}
    return Response(content, headers=headers)


def _version() -> str:
    from pt2kit import __version__

    return __version__
