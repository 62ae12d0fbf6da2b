"""A front end of `pt2kit serve --frontends N`: serves HTTP and gRPC and hands checked tensors to the engine.

`connect_engine(path)` connects to the engine's Unix socket, hands it this process's shared-memory arena (`shm`) and
gets back what each model is (its manifest, batch size, device, warm-up error): `EngineModel`s stand in for
`ModelService`s in the app (metadata, config, checks), without loading anything. `EngineBackend` is the app's
`Backend`: it writes each request's inputs into a free slot, sends a `Job`, and awaits the engine's `Reply` on the
event loop (one reader task per process, no thread hand-off).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from dataclasses import dataclass

import torch

from pt2kit.artifact.size_expr import parse_size_cached
from pt2kit.errors import UsageError
from pt2kit.serve.engine import HELLO
from pt2kit.serve.metrics import ServeMetrics
from pt2kit.serve.protocol import InferRequest, RequestError
from pt2kit.serve.service import find_batch_dim
from pt2kit.serve.shm import Job, SlotArena, frame, read_message, recv_message

SLOTS = 256  # requests in flight per front end before they travel inside their messages
MIN_SLOT_BYTES = 64 * 1024


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
        self.waiting: dict[int, tuple[asyncio.Future, int | None]] = {}
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
        """Send `request` to the engine and wait for its outputs (`RequestError` 503 or 500 when it could not run)."""
        if self.gone:
            raise RequestError(self.gone, 503)
        arena = self.link.arena
        slot = arena.take() if arena.fits(list(request.tensors.values())) else None
        job_id = next(self.ids)
        if slot is None:
            job = Job(job_id, service.name, request.batch, None, tensors={k: v.contiguous() for k, v in request.tensors.items()})
        else:
            job = Job(job_id, service.name, request.batch, slot, refs=arena.write(slot, request.tensors))
        future = asyncio.get_running_loop().create_future()
        self.waiting[job_id] = (future, slot)
        self.writer.write(frame(job))
        reply = await future  # a cancelled wait leaves the slot to the reader, which frees it when the reply comes
        try:
            if reply.error:
                raise RequestError(f"model `{service.name}` failed on this request: {reply.error}" if reply.error_status == 500
                                   else reply.error, reply.error_status)
            outputs = {k: v.clone() for k, v in arena.read(reply.refs).items()} if reply.refs else reply.tensors
        finally:
            if slot is not None:
                arena.give_back(slot)
        self._record(service.name, request.batch, reply)
        return outputs

    def _record(self, model: str, own_rows: int, reply) -> None:
        """This request's share of its model call in this front end's metrics; the call itself, once, by the front
        end of the call's first request (statistics are per front end, like `--workers`: sum them over processes)."""
        rows, requests, phase_ns = reply.batch
        self.metrics.queue_seconds(model, reply.queue_ns / 1e9)
        if reply.first:
            self.metrics.batch(model, rows, sum(phase_ns) / 1e9)
        self.metrics.stats[model].record_share(own_rows, rows, requests, reply.queue_ns, phase_ns, counts_call=reply.first)

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                reply = await read_message(reader)
                future, slot = self.waiting.pop(reply.id, (None, None))
                if future is None:
                    continue
                if future.cancelled():
                    if slot is not None:
                        self.link.arena.give_back(slot)
                    continue
                future.set_result(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.gone = "the engine process stopped; retry on another replica"
            for future, _ in self.waiting.values():
                if not future.done():
                    future.set_exception(RequestError(self.gone, 503))
            self.waiting.clear()
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
