"""`pt2kit serve`: serve artifacts over HTTP with the Open Inference Protocol v2, dynamic batching and metrics.

Owns the serving layer. May import: `runtime` (`pt2kit.load`), `artifact` (the manifest and its input contract), the base
(`errors`, `progress`), `lazy` and `pt2kit.__version__` (in the server's metadata); and FastAPI, uvicorn and
prometheus-client (the `serve` extra), grpcio and tritonclient's generated stubs (the `grpc` extra, only in
`grpc_app`), Ray Serve (the `ray` extra, only in the `ray_*` modules). Nothing below imports it.

The seams, each usable on its own (Ray Serve scale-out builds on them):

- `protocol`: pure functions, no HTTP framework. `parse_infer_request(body, manifest, header_length=...)` turns an
  OIP request (JSON, or JSON plus binary tensor data) into an `InferRequest` of tensors checked against the
  manifest, or raises `RequestError` (with its HTTP status); `encode_infer_response(...)` turns outputs back into
  a body and headers; `model_metadata(...)` describes a model.
- `service`: `ModelService`, one loaded model. `run_batch(requests)` stacks the requests along the batch dim the
  manifest records (a dynamic dim every input has at one position), runs one call and splits the outputs back;
  `load_services(paths, ...)` loads artifacts with `pt2kit.load` (extra `load_options` passed through).
- `batcher`: `DynamicBatcher`, the asyncio backend: a queue and a worker thread per model, batches up to
  `max_batch_size` rows within `max_queue_delay_ms`, `QueueFullError` past `max_queue`.
- `app`: `create_app(services, backend=..., grpc_port=...)` returns the FastAPI (ASGI) app; any object with
  `start()`, `stop()` and `infer(service, request)` coroutines is a `Backend`. Every model route also answers under
  `/versions/1/`.
- `http_body`: body limits, the bound on bytes being read at once, gzip/deflate both ways.
- `triton`: Triton's model configuration (`/config`) and statistics (`/stats`) from the manifest and counters.
- `grpc_app`: `inference.GRPCInferenceService` on the same loop, batcher, checks and metrics (`--grpc-port`).
- `metrics`: `ServeMetrics`, the Prometheus counters and histograms in a registry per app.
- `server`: `run_server(app, options)` runs uvicorn and drains on SIGTERM: 0 when every request was answered, 1 when
  start-up failed or the drain timed out.
- `engine`, `engine_client`, `shm` (`--frontends N`): `Engine`, one process owning the models and a batcher per model
  for every front end; `frontend_app(socket_path)`, the app of a front end whose backend (`EngineBackend`) hands
  checked tensors to the engine through shared-memory slots (`SlotArena`) and small messages over a Unix socket;
  `run_with_engine(...)` (in `server`) runs the engine and its front ends.
- `ray_app`, `ray_backend`, `ray_config`, `ray_run` (the `ray` extra; docs/scale-out.md): the same app on Ray Serve,
  `@serve.ingress` per replica and `@serve.batch` as its backend; `ray_application(...)`, the config's builder
  `app_builder(args)`, `write_ray_config(...)`, `deploy_on_ray(...)`.

Example:
    >>> from pt2kit.serve import create_app, load_services
    >>> app = create_app(load_services(["mlp.aoti.pt2"]), max_queue_delay_ms=2)
"""

from pt2kit.lazy import lazy_exports
from pt2kit.serve.protocol import InferRequest, RequestError, encode_infer_response, model_metadata, parse_infer_request
from pt2kit.serve.server import ServeOptions, build_app, run_server
from pt2kit.serve.service import BatchDim, ModelService, find_batch_dim, load_services, model_name

# the app layer needs FastAPI, and Ray Serve its own extra: imported only when asked for
__getattr__ = lazy_exports(__name__, {
    "create_app": "pt2kit.serve.app", "Backend": "pt2kit.serve.app", "ServerState": "pt2kit.serve.app",
    "DynamicBatcher": "pt2kit.serve.batcher", "QueueFullError": "pt2kit.serve.batcher", "ServeMetrics": "pt2kit.serve.metrics",
    "RayOptions": "pt2kit.serve.ray_app", "ray_application": "pt2kit.serve.ray_app", "write_ray_config": "pt2kit.serve.ray_config",
    "deploy_on_ray": "pt2kit.serve.ray_run", "stop_on_ray": "pt2kit.serve.ray_run",
})


__all__ = [
    "Backend", "BatchDim", "DynamicBatcher", "InferRequest", "ModelService", "QueueFullError", "RequestError", "ServeMetrics",
    "ServeOptions", "ServerState", "build_app", "create_app", "encode_infer_response", "find_batch_dim", "load_services",
    "model_metadata", "model_name", "parse_infer_request", "run_server",
]
