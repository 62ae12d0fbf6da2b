"""The asyncio dynamic batcher: one queue and one worker thread per model.

Requests wait in the model's queue; the worker takes the oldest one, adds queued requests of the same group (equal
sizes but for the batch dim) until their batches reach `max_batch_size` or `max_queue_delay` has passed since the
oldest arrived, runs them with `ModelService.run_batch` and hands each request its slice. Calls that take over
`PT2KIT_SERVE_INLINE_MS` (2 ms) on average run on the model's own thread, so the event loop keeps serving HTTP
meanwhile; shorter ones run on the loop itself, where a thread hand-off would cost more than the call. A lone request
(nothing else queued: the light-load case, where latency is what counts) also runs on the loop when lone calls take
under `PT2KIT_SERVE_LONE_INLINE_MS` (5 ms) on average: a GPU model's batch-1 call (ResNet-50: about 2 ms of kernel
launches) skips the hand-off to the thread and back; what arrives meanwhile waits at most that long, as it would wait
for the running call anyway, and only routes without a model (health, metadata) could have been answered sooner.
Requests that arrive while a batch runs form the next one, so with a delay of 0 batches still grow with the load.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import torch

from pt2kit.serve.metrics import ServeMetrics
from pt2kit import progress
from pt2kit.serve.protocol import InferRequest, RequestError
from pt2kit.serve.service import ModelService


INLINE_BELOW_S = float(os.environ.get("PT2KIT_SERVE_INLINE_MS", "2")) / 1000
LONE_INLINE_BELOW_S = float(os.environ.get("PT2KIT_SERVE_LONE_INLINE_MS", "5")) / 1000


class QueueFullError(Exception):
    """The model's queue holds `max_queue` requests; the client should retry later (HTTP 503 + Retry-After)."""

    def __init__(self, model: str, limit: int):
        super().__init__(f"the queue of model `{model}` is full ({limit} requests waiting); retry later")
        self.retry_after = 1


@dataclass
class _Pending:
    request: InferRequest
    key: tuple
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class _ModelQueue:
    def __init__(self, service: ModelService, max_delay_s: float, max_queue: int, metrics: ServeMetrics | None):
        self.service = service
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.metrics = metrics
        self.pending: deque[_Pending] = deque()
        self.wakeup = asyncio.Event()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pt2kit-serve-{service.name}")
        self.task: asyncio.Task | None = None
        self.closing = False
        self.call_s = INLINE_BELOW_S  # moving average of a call's seconds; on the thread until measured
        self.lone_call_s = LONE_INLINE_BELOW_S  # the same for calls of one request found alone

    async def worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.pending:
                if self.closing:
                    return
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            batch = await self._collect()
            if not batch:
                continue
            started = time.perf_counter()  # queue time ends here
            if self.metrics:
                for item in batch:
                    self.metrics.queue_seconds(self.service.name, started - item.enqueued)
            requests = [item.request for item in batch]
            lone = len(batch) == 1 and not self.pending
            try:
                if self.call_s < INLINE_BELOW_S or (lone and self.lone_call_s < LONE_INLINE_BELOW_S):
                    # a short call runs on the loop: a thread hand-off (and the GIL passed back and forth between the
                    # loop and the worker) would cost more than the call; long calls go to the thread so the loop
                    # keeps reading requests meanwhile
                    results, seconds = self._timed_run(requests)
                else:
                    results, seconds = await loop.run_in_executor(self.executor, self._timed_run, requests)
            except Exception as exc:  # the model itself failed: every request of the batch gets the error
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            self.call_s = 0.8 * self.call_s + 0.2 * seconds
            if lone:
                self.lone_call_s = 0.8 * self.lone_call_s + 0.2 * seconds
            if self.metrics:
                rows = sum(r.batch for r in requests)
                self.metrics.batch(self.service.name, rows, seconds)
                queue_ns = int(sum(started - item.enqueued for item in batch) * 1e9)
                self.metrics.model_call(self.service.name, rows, len(batch), queue_ns, self.service.last_phase_ns)
            for item, result in zip(batch, results):
                if not item.future.done():  # the client may have gone away
                    item.future.set_result(result)

    def _timed_run(self, requests: list[InferRequest]) -> tuple[list, float]:
        start = time.perf_counter()
        return self.service.run_batch(requests), time.perf_counter() - start

    async def _collect(self) -> list[_Pending]:
        """The oldest request and queued ones of its group, waiting up to the delay for the batch to fill."""
        head = self.pending[0]
        deadline = head.enqueued + self.max_delay_s
        limit = self.service.max_batch_size
        while True:
            batch, rows = self._take(head.key, limit, dry_run=True)
            remaining = deadline - time.perf_counter()
            if rows >= limit or remaining <= 0 or self.closing:
                break
            self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        batch, _ = self._take(head.key, limit, dry_run=False)
        return [item for item in batch if not item.future.done()]

    def _take(self, key: tuple, limit: int, dry_run: bool) -> tuple[list[_Pending], int]:
        batch, rows, keep = [], 0, deque()
        for item in self.pending:
            fits = item.key == key and (not batch or rows + item.request.batch <= limit)
            if fits:
                batch.append(item)
                rows += item.request.batch
            else:
                keep.append(item)
        if not dry_run:
            self.pending = keep
        return batch, rows


class DynamicBatcher:
    """The in-process backend: batches concurrent requests per model (see the module docstring).

    Args:
        services: the models.
        max_queue_delay_ms: how long the oldest request may wait for others to join its batch.
        max_queue: the most requests waiting per model; one more gets `QueueFullError`.
        metrics: where queue time, inference time and batch sizes are recorded.

    Example:
        >>> backend = DynamicBatcher(services, max_queue_delay_ms=2)
        >>> await backend.start(); outputs = await backend.infer(service, request)
    """

    def __init__(self, services: Sequence[ModelService], *, max_queue_delay_ms: float = 0.0, max_queue: int = 1024,
                 metrics: ServeMetrics | None = None):
        if max_queue_delay_ms < 0 or max_queue < 1:
            raise ValueError("max_queue_delay_ms must be >= 0 and max_queue >= 1")
        self.services = list(services)
        self.max_queue_delay_ms = max_queue_delay_ms
        self.max_queue = max_queue
        self.metrics = metrics
        self._queues: dict[str, _ModelQueue] = {}

    async def start(self) -> None:
        """Start one worker per model (call from the running event loop)."""
        for service in self.services:
            queue = _ModelQueue(service, self.max_queue_delay_ms / 1000, self.max_queue, self.metrics)
            queue.task = asyncio.create_task(queue.worker(), name=f"pt2kit-batcher-{service.name}")
            self._queues[service.name] = queue

    async def infer(self, service: ModelService, request: InferRequest) -> dict[str, torch.Tensor]:
        """Queue `request` and wait for its outputs.

        Raises:
            QueueFullError: the model's queue is full.
            Exception: whatever the model raised for the batch this request ran in.
        """
        queue = self._queues[service.name]
        if len(queue.pending) >= queue.max_queue or queue.closing:
            raise QueueFullError(service.name, queue.max_queue)
        item = _Pending(request, service.group_key(request), asyncio.get_running_loop().create_future())
        queue.pending.append(item)
        queue.wakeup.set()
        return await item.future

    def queue_depth(self, model: str) -> int:
        return len(self._queues[model].pending) if model in self._queues else 0

    async def stop(self) -> None:
        """Run what is queued, then stop the workers and their threads."""
        for queue in self._queues.values():
            queue.closing = True
            queue.wakeup.set()
        for queue in self._queues.values():
            if queue.task is not None:
                await queue.task
            queue.executor.shutdown(wait=True)
        self._queues.clear()


async def run_model(backend, service: ModelService, request: InferRequest) -> dict[str, torch.Tensor]:
    """Run a checked request on `backend` (a `Backend`: this batcher or another), for HTTP and gRPC alike.

    Raises:
        RequestError: 503 when the queue is full, 500 when the model raised (logged; the server keeps serving).
    """
    try:
        return await backend.infer(service, request)
    except QueueFullError as exc:
        raise RequestError(str(exc), 503) from None
    except RequestError:
        raise
    except Exception as exc:
        message = " ".join(str(exc).split())[:300]
        progress.info(f"error: model `{service.name}` raised {type(exc).__name__}: {message}")
        raise RequestError(f"model `{service.name}` failed on this request: {type(exc).__name__}: {message}", 500) from None
