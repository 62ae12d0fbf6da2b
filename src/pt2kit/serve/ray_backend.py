"""The Ray Serve backend: batching through Ray Serve's own `@serve.batch`, one batch queue per model.

It is a `Backend` for `create_app` (like the asyncio `DynamicBatcher`), so the routes, the request checks and the
metrics are the ones `pt2kit serve` has. `@serve.batch` counts a batch's size with `batch_size_fn`, so a request
carrying k rows along the batch dim counts k against `max_batch_size`, as in `DynamicBatcher`. It does not group
requests by shape, so a collected batch is split here into groups whose sizes agree but for the batch dim
(`ModelService.group_key`), and each group runs as one model call.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import torch
from ray import serve

from pt2kit.serve.metrics import _ROWS, _SECONDS, ServeMetrics
from pt2kit.serve.protocol import InferRequest
from pt2kit.serve.service import ModelService


class RayServeMetrics(ServeMetrics):
    """pt2kit's metrics twice: in the replica's registry (`GET /metrics`, the replica that answers) and in Ray's
    metrics, which Ray exports on each node tagged with application, deployment and replica, beside its own
    `ray_serve_*` ones, so a sum over the cluster is one query (`sum(rate(ray_pt2kit_requests_total[1m]))`)."""

    def __init__(self, models: list[str]):
        from ray.serve import metrics as ray_metrics

        super().__init__(models)
        self.ray_requests = ray_metrics.Counter("pt2kit_requests", "Inference requests answered, by model and HTTP status code",
                                                tag_keys=("model", "code"))
        self.ray_histograms = {
            kind: ray_metrics.Histogram(f"pt2kit_{kind}", description, boundaries=list(buckets), tag_keys=("model",))
            for kind, description, buckets in (
                ("request_duration_seconds", "Time from receiving a request to answering it", _SECONDS),
                ("queue_duration_seconds", "Time a request waited in the batch queue", _SECONDS),
                ("inference_duration_seconds", "Time of one model call (one batch)", _SECONDS),
                ("batch_size", "Rows along the batch dim in one model call", _ROWS))}

    def request(self, model: str, code: int, seconds: float) -> None:
        super().request(model, code, seconds)
        label = self.label(model)
        self.ray_requests.inc(1, tags={"model": label, "code": str(code)})
        self.ray_histograms["request_duration_seconds"].observe(seconds, tags={"model": label})

    def queue_seconds(self, model: str, seconds: float) -> None:
        super().queue_seconds(model, seconds)
        self.ray_histograms["queue_duration_seconds"].observe(seconds, tags={"model": model})

    def batch(self, model: str, rows: int, seconds: float) -> None:
        super().batch(model, rows, seconds)
        self.ray_histograms["batch_size"].observe(rows, tags={"model": model})
        self.ray_histograms["inference_duration_seconds"].observe(seconds, tags={"model": model})


@dataclass
class _Queued:
    request: InferRequest
    enqueued: float = field(default_factory=time.perf_counter)


class _ModelBatcher:
    """`@serve.batch` over one model; its model calls run on one thread so the replica's event loop keeps serving."""

    def __init__(self, service: ModelService, max_queue_delay_ms: float, metrics: ServeMetrics | None):
        self.service = service
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pt2kit-ray-{service.name}")
        self.submit = serve.batch(max_batch_size=service.max_batch_size, batch_wait_timeout_s=max_queue_delay_ms / 1000,
                                  batch_size_fn=lambda items: sum(item.request.batch for item in items))(self._run)

    async def infer(self, request: InferRequest) -> dict[str, torch.Tensor]:
        if request.batch > self.service.max_batch_size:
            # more rows than one batch holds: run it alone, as DynamicBatcher does (serve.batch would refuse it)
            result = (await self._run([_Queued(request)]))[0]
        else:
            result = await self.submit(_Queued(request))
        if isinstance(result, Exception):
            raise result
        return result

    async def _run(self, items: list[_Queued]) -> list:
        started = time.perf_counter()
        if self.metrics:
            for item in items:
                self.metrics.queue_seconds(self.service.name, started - item.enqueued)
        groups: dict[tuple, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(self.service.group_key(item.request), []).append(i)
        results: list = [None] * len(items)
        loop = asyncio.get_running_loop()
        for indices in groups.values():
            requests = [items[i].request for i in indices]
            try:
                outputs, seconds = await loop.run_in_executor(self.executor, self._timed_run, requests)
            except Exception as exc:  # the model failed on this group: each of its requests gets the error
                outputs, seconds = [exc] * len(requests), None
            if self.metrics and seconds is not None:
                self.metrics.batch(self.service.name, sum(r.batch for r in requests), seconds)
            for i, output in zip(indices, outputs):
                results[i] = output
        return results

    def _timed_run(self, requests: list[InferRequest]) -> tuple[list, float]:
        start = time.perf_counter()
        return self.service.run_batch(requests), time.perf_counter() - start


class RayBatchBackend:
    """The backend of a Ray Serve replica: `@serve.batch` per model (see the module docstring).

    Args:
        services: the replica's models.
        max_queue_delay_ms: `batch_wait_timeout_s` of `@serve.batch`: how long a batch waits to fill.
        metrics: where queue time, inference time and batch sizes are recorded.

    Example:
        >>> app = create_app(services, backend=RayBatchBackend(services, max_queue_delay_ms=2))
    """

    def __init__(self, services: Sequence[ModelService], *, max_queue_delay_ms: float = 0.0, metrics: ServeMetrics | None = None):
        if max_queue_delay_ms < 0:
            raise ValueError("max_queue_delay_ms must be >= 0")
        self._batchers = {s.name: _ModelBatcher(s, max_queue_delay_ms, metrics) for s in services}

    async def start(self) -> None:
        """Nothing to start: `@serve.batch` creates its queue on the first call, in the replica's event loop."""

    async def infer(self, service: ModelService, request: InferRequest) -> dict[str, torch.Tensor]:
        """Queue `request` in its model's `@serve.batch` and wait for its outputs."""
        return await self._batchers[service.name].infer(request)

    async def stop(self) -> None:
        """Let running model calls finish, then stop their threads (Ray drains requests before this)."""
        for batcher in self._batchers.values():
            batcher.executor.shutdown(wait=True)
