"""A front end of `pt2kit serve --frontends N`: serves HTTP and gRPC and hands checked tensors to the engine.

`connect_engine(path)` connects to the engine's Unix socket, hands it this process's shared-memory arena (`shm`) and
gets back what each model is (its manifest, batch size, device, warm-up error): `EngineModel`s stand in for
`ModelService`s in the app (metadata, config, checks), without loading anything. `EngineBackend` is the app's
`Backend`, and batches first: a request that finds fewer than `JOBS_IN_FLIGHT` jobs of its model in flight goes at
once, as a job of its own; the ones that arrive meanwhile wait for a reply and then go together, their rows joined
into one run of slots, as one job per group (equal sizes but for the batch dim, at most `max_batch_size` rows). The
engine so handles a few messages per batch, not one per request; the reply of a job is split back to its requests
on this process's event loop (one reader task, no thread hand-off). No request waits for a timer: the wait is the
time its model's jobs take to come back, which is when the engine could take a new one anyway.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
from collections import deque
from dataclasses import dataclass, field

import torch

from pt2kit.artifact.size_expr import parse_size_cached
from pt2kit.errors import UsageError
from pt2kit.serve.engine import HELLO
from pt2kit.serve.metrics import ServeMetrics
from pt2kit.serve.protocol import InferRequest, RequestError
from pt2kit.serve.service import find_batch_dim, group_key
from pt2kit.serve.shm import SlotArena, joined_bytes
from pt2kit.serve.wire import Job, Reply, frame, read_message, recv_message

SLOTS = 256  # rows in flight per front end (at one row a slot) before jobs travel inside their messages
MIN_SLOT_BYTES = 64 * 1024
JOBS_IN_FLIGHT = int(os.environ.get("PT2KIT_SERVE_JOBS_IN_FLIGHT", "2"))  # per model and front end: one computing, one
# queued in the engine, so the GPU never waits for this front end; 1 batches more per job and pipelines less


class EngineModel:
    """What the app needs of a model the engine runs: name, manifest, batch dim and size, readiness."""

    def __init__(self, name: str, info: dict):
        self.name = name
        self.manifest = info["manifest"]
        self.batch_dim, self.no_batch_reason = find_batch_dim(self.manifest)
        self.max_batch_size = info["max_batch_size"]
        self.device = torch.device(info["device"])
        self.platform = info["platform"]
        self.warm_up_error = info["warm_up_error"]
        self.path, self.kind = info["path"], info["kind"]
        self.ready = False

    def describe(self) -> str:
        return f"model `{self.name}` from {self.path} ({self.kind}, {self.device.type}), run by the engine process"

    def group_key(self, request: InferRequest) -> tuple:
        """Requests with equal keys may share a job (as `ModelService.group_key`)."""
        return group_key(self.batch_dim, request.tensors)


@dataclass
class _Waiting:
    """A request of this front end, waiting to go to the engine or for its job's reply."""

    request: InferRequest
    key: tuple
    future: asyncio.Future
    arrived_ns: int = field(default_factory=time.perf_counter_ns)
    sent_ns: int = 0


@dataclass
class _SentJob:
    model: EngineModel
    requests: list[_Waiting]
    slot: int | None
    slots: int


@dataclass
class _ModelQueue:
    pending: deque = field(default_factory=deque)
    in_flight: int = 0


@dataclass
class EngineLink:
    """A front end's connection to the engine: the socket, the arena it shares, and the models it serves."""

    sock: socket.socket
    arena: SlotArena
    models: list[EngineModel]


def connect_engine(path: str, slot_bytes: int | None = None) -> EngineLink:
    """Connect to the engine at `path`, share a new arena with it, and learn its models.

    Raises:
        UsageError: nothing listens at `path` (the engine stopped, or the path is wrong).
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        raise UsageError(f"cannot reach the engine at `{path}` ({exc.strerror or exc}); start the server with `pt2kit serve --frontends N`") from None
    if slot_bytes is None:  # the slot size comes from the models: learn them first, then connect with a sized arena
        socket.send_fds(sock, [HELLO.pack(0, 0)], [])
        models = recv_message(sock)
        sock.close()
        return connect_engine(path, slot_size(models))
    arena = SlotArena.create(SLOTS, slot_bytes)
    socket.send_fds(sock, [HELLO.pack(arena.slots, arena.slot_bytes)], [arena.fd])
    models = recv_message(sock)
    return EngineLink(sock, arena, [EngineModel(name, info) for name, info in models.items()])


def slot_size(models: dict) -> int:
    """Bytes of a slot: the largest input of one row at the dims' smallest sizes, times 2 (outputs share the slot)."""
    largest = MIN_SLOT_BYTES
    for info in models.values():
        manifest = info["manifest"]
        sizes = {d.symbol: max(d.min, 1) for d in manifest.dims}
        total = 0
        for spec in manifest.inputs:
            if spec.kind != "tensor":
                continue
            count = 1
            for size in spec.shape:
                count *= size if isinstance(size, int) else (parse_size_cached(size).evaluate(sizes) or 1)
            total += count * torch.empty((), dtype=getattr(torch, spec.dtype)).element_size() + 64
        largest = max(largest, 2 * total)
    return largest


class EngineBackend:
    """The `Backend` of a front end: requests go to the engine process through shared memory.

    Args:
        link: from `connect_engine`.
        metrics: this front end's metrics; the engine's queue and batch figures are recorded here as replies come.
        on_engine_lost: called once if the engine's connection drops (a front-end process stops itself: it can
            serve nothing without the engine).
    """

    def __init__(self, link: EngineLink, metrics: ServeMetrics, on_engine_lost=None):
        self.link, self.metrics, self.on_engine_lost = link, metrics, on_engine_lost
        self.ids = itertools.count()
        self.queues = {model.name: _ModelQueue() for model in link.models}
        self.jobs: dict[int, _SentJob] = {}
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task | None = None
        self.gone = ""

    async def start(self) -> None:
        reader, self.writer = await asyncio.open_unix_connection(sock=self.link.sock)
        self.reader_task = asyncio.create_task(self._read_replies(reader), name="pt2kit-engine-replies")

    async def stop(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.reader_task is not None:
            self.reader_task.cancel()

    async def infer(self, service: EngineModel, request: InferRequest) -> dict[str, torch.Tensor]:
        """Send `request` to the engine (alone, or joined with others) and wait for its outputs (`RequestError` 503
        or 500 when it could not run)."""
        if self.gone:
            raise RequestError(self.gone, 503)
        waiting = _Waiting(request, service.group_key(request), asyncio.get_running_loop().create_future())
        queue = self.queues[service.name]
        queue.pending.append(waiting)
        if queue.in_flight < JOBS_IN_FLIGHT:
            self._send_pending(service, queue)
        outputs, reply, counts_call = await waiting.future
        if reply.error:
            raise RequestError(f"model `{service.name}` failed on this request: {reply.error}" if reply.error_status == 500
                               else reply.error, reply.error_status)
        self._record(service.name, request.batch, reply, waiting.sent_ns - waiting.arrived_ns, counts_call)
        return outputs

    def _send_pending(self, model: EngineModel, queue: _ModelQueue) -> None:
        """Every pending request of `model` to the engine: one job per group, each at most `max_batch_size` rows."""
        groups: dict[tuple, list[list[_Waiting]]] = {}
        while queue.pending:
            waiting = queue.pending.popleft()
            if waiting.future.done():  # the client went away before its request left
                continue
            jobs = groups.setdefault(waiting.key, [])
            rows = sum(w.request.batch for w in jobs[-1]) if jobs else 0
            if not jobs or model.batch_dim is None or rows + waiting.request.batch > model.max_batch_size:
                jobs.append([])
            jobs[-1].append(waiting)
        now = time.perf_counter_ns()
        for jobs in groups.values():
            for requests in jobs:
                for waiting in requests:
                    waiting.sent_ns = now
                self._send_job(model, requests)
                queue.in_flight += 1

    def _send_job(self, model: EngineModel, requests: list[_Waiting]) -> None:
        arena, parts = self.link.arena, [w.request.tensors for w in requests]
        rows = sum(w.request.batch for w in requests)
        position = model.batch_dim.position if model.batch_dim else 0
        # a slot holds one row's inputs and outputs (`slot_size`); a job takes a slot a row, fewer when its rows are
        # smaller, and travels inline when its rows are larger than a slot sized for the dims' smallest sizes
        slots = max(1, -(-2 * joined_bytes(parts) // arena.slot_bytes))
        slot = arena.take(slots) if slots <= rows else None
        job_id = next(self.ids)
        if slot is None:
            tensors = parts[0] if len(parts) == 1 else {
                name: torch.cat([p[name] for p in parts], dim=position) for name in parts[0]}
            job = Job(job_id, model.name, rows, None, tensors={k: v.contiguous() for k, v in tensors.items()}, requests=len(requests))
        else:
            job = Job(job_id, model.name, rows, slot, refs=arena.write_joined(slot, parts, position), requests=len(requests), slots=slots)
        self.jobs[job_id] = _SentJob(model, requests, slot, slots)
        self.writer.write(frame(job))

    def _answer(self, reply: Reply) -> None:
        """Split `reply` back to the requests of its job, free its slots, and send what waited meanwhile."""
        job = self.jobs.pop(reply.id, None)
        if job is None:
            return
        try:
            if reply.error:
                parts = [None] * len(job.requests)
            else:
                outputs = reply.tensors
                if reply.refs:  # out of the slots before they are reused: one copy per output, views of it per request
                    outputs = {k: v.clone() for k, v in self.link.arena.read(reply.refs).items()}
                if len(job.requests) == 1:
                    parts = [outputs]
                else:
                    sizes = [w.request.batch for w in job.requests]
                    split = {k: torch.split(v, sizes, dim=job.model.batch_dim.outputs[k]) for k, v in outputs.items()}
                    parts = [{k: pieces[i] for k, pieces in split.items()} for i in range(len(job.requests))]
            counts_call = reply.first  # the call is counted with the job's first request still waiting
            for waiting, part in zip(job.requests, parts):
                if not waiting.future.done():  # the client may have gone away
                    waiting.future.set_result((part, reply, counts_call))
                    counts_call = False
        finally:
            if job.slot is not None:
                self.link.arena.give_back(job.slot, job.slots)
            queue = self.queues[job.model.name]
            queue.in_flight -= 1
            if queue.pending and queue.in_flight < JOBS_IN_FLIGHT:
                self._send_pending(job.model, queue)

    def _record(self, model: str, own_rows: int, reply: Reply, waited_here_ns: int, counts_call: bool) -> None:
        """This request's share of its model call in this front end's metrics; the call itself, once, by the front
        end of the call's first request (statistics are per front end, like `--workers`: sum them over processes).
        Its queue time is its wait here for a job to go plus its job's wait in the engine."""
        rows, requests, phase_ns = reply.batch
        queue_ns = reply.queue_ns + waited_here_ns
        self.metrics.queue_seconds(model, queue_ns / 1e9)
        if counts_call:
            self.metrics.batch(model, rows, sum(phase_ns) / 1e9)
        self.metrics.stats[model].record_share(own_rows, rows, requests, queue_ns, phase_ns, counts_call=counts_call)

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                self._answer(await read_message(reader))
        except (asyncio.IncompleteReadError, ConnectionError):
            self.gone = "the engine process stopped; retry on another replica"
            for job in self.jobs.values():
                for waiting in job.requests:
                    if not waiting.future.done():
                        waiting.future.set_exception(RequestError(self.gone, 503))
            for queue in self.queues.values():
                for waiting in queue.pending:
                    if not waiting.future.done():
                        waiting.future.set_exception(RequestError(self.gone, 503))
                queue.pending.clear()
            self.jobs.clear()
            if self.on_engine_lost is not None:
                self.on_engine_lost()


def frontend_app(socket_path: str, *, slot_bytes: int | None = None, on_engine_lost=None, **app_options):
    """The app of one front end: `create_app` over the engine's models at `socket_path`, requests run by the engine.

    `app_options` go to `create_app` (`max_body_bytes`, `grpc_port`, ...); the engine warmed the models up already.

    Example:
        >>> app = frontend_app("/tmp/pt2kit-engine-x/engine.sock", grpc_port=8001)
    """
    from pt2kit.serve.app import create_app

    link = connect_engine(socket_path, slot_bytes)
    metrics = ServeMetrics([m.name for m in link.models])
    backend = EngineBackend(link, metrics, on_engine_lost)
    return create_app(link.models, backend=backend, metrics=metrics, warm_up=False, **app_options)
