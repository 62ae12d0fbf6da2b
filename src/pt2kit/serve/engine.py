"""The batching engine of `pt2kit serve --frontends N`: one process owns the models, the front ends hand it tensors.

Front-end processes (uvicorn HTTP and gRPC, see `engine_client`) parse and check requests, join the ones that
arrived while their previous jobs were in flight into one job, write its rows into their shared-memory slots (`shm`)
and send a `Job` naming the slots over a Unix socket (`wire`: a packed struct). Here, one reader thread watches every
front end's socket (`selectors`) and queues the jobs per model; one batch thread per model takes the oldest job and
the queued ones of its group (equal sizes but for the batch dim) up to `max_batch_size` rows within
`max_queue_delay_ms`, and runs them, so the engine's work is per job (a few per batch), not per request:

- on the CPU, in place: one request's inputs are the slot itself (no stacking), several are concatenated once;
- on CUDA, the inputs go to the GPU on a copy stream, straight from the slots (registered as pinned memory; a
  pageable copy where registration fails), and the model runs on the compute stream once they are there. The
  outputs come back with non-blocking copies into pinned memory, and a completion thread waits for them, writes
  them into each job's slot and replies, while the batch thread already copies the next batch in: copies overlap
  compute.

The front ends checked every input against the manifest, so the model is called without checking them again.
"""

from __future__ import annotations

import os
import queue
import selectors
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import torch

from pt2kit import progress
from pt2kit.errors import first_line
from pt2kit.serve.service import ModelService
from pt2kit.serve.shm import SlotArena
from pt2kit.serve.wire import Job, Reply, frame, split_frames

HELLO = struct.Struct("<QQ")  # a front end's first bytes: its arena's slot count and slot size (its fd rides along)


@dataclass
class _Entry:
    connection: "_Connection"
    job: Job
    inputs: dict[str, torch.Tensor]
    key: tuple
    enqueued_ns: int = field(default_factory=time.perf_counter_ns)


class _Connection:
    """One front end: its socket, its arena (mapped here), a lock for replies."""

    def __init__(self, sock: socket.socket, arena: SlotArena | None, pinned: bool):
        self.sock, self.arena, self.pinned = sock, arena, pinned
        self.lock = threading.Lock()
        self.received = bytearray()  # bytes read but not yet a whole frame

    def reply(self, *replies: Reply) -> None:
        data = b"".join(frame(reply) for reply in replies)  # one system call for every reply of a batch
        try:
            with self.lock:
                self.sock.sendall(data)
        except OSError:  # the front end went away; its clients are gone with it
            pass


class _Lane:
    """The queue, batch thread and (CUDA) completion thread of one model."""

    def __init__(self, service: ModelService, max_delay_s: float, max_queue: int):
        self.service, self.max_delay_s, self.max_queue = service, max_delay_s, max_queue
        self.pending: deque[_Entry] = deque()
        self.cond = threading.Condition()
        self.closing = False
        self.cuda = service.device.type == "cuda"
        self.done: queue.Queue = queue.Queue()  # batches launched on the GPU, for the completion thread
        # two batches in flight: the next one is copied in while one computes, and is collected as late as possible
        # (so it holds every request that came meanwhile)
        self.in_flight = threading.Semaphore(2)
        if self.cuda:
            self.copy_stream = torch.cuda.Stream(service.device)
            self.compute_stream = torch.cuda.current_stream(service.device)
        self.torch_threads = torch.get_num_threads()  # `--threads`, set in the main thread; OpenMP keeps it per thread
        self.threads = [threading.Thread(target=self._batch_loop, name=f"pt2kit-engine-{service.name}", daemon=True)]
        if self.cuda:
            self.threads.append(threading.Thread(target=self._completion_loop, name=f"pt2kit-engine-{service.name}-out", daemon=True))
        for thread in self.threads:
            thread.start()

    def put(self, entries: list[_Entry]) -> None:
        """Queue the jobs read in one go (one lock and one wake-up); a job that finds the queue full gets a 503."""
        refused = []
        with self.cond:
            for entry in entries:
                if len(self.pending) >= self.max_queue or self.closing:
                    refused.append(entry)
                else:
                    self.pending.append(entry)
            self.cond.notify()
        for entry in refused:
            entry.connection.reply(Reply(entry.job.id, error_status=503, error=(
                f"the queue of model `{self.service.name}` is full ({self.max_queue} jobs waiting); retry later")))

    def close(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        self.threads[0].join()
        if self.cuda:
            self.done.put(None)
            self.threads[1].join()

    def _collect(self) -> list[_Entry] | None:
        limit = self.service.max_batch_size
        with self.cond:
            while not self.pending:
                if self.closing:
                    return None
                self.cond.wait()
            head = self.pending[0]
            deadline = head.enqueued_ns / 1e9 + self.max_delay_s
            while True:
                rows = sum(e.job.batch for e in self.pending if e.key == head.key)
                remaining = deadline - time.perf_counter()
                if rows >= limit or remaining <= 0 or self.closing:
                    break
                self.cond.wait(remaining)
            batch, keep, rows = [], deque(), 0
            for entry in self.pending:
                if entry.key == head.key and (not batch or rows + entry.job.batch <= limit):
                    batch.append(entry)
                    rows += entry.job.batch
                else:
                    keep.append(entry)
            self.pending = keep
            return batch

    def _batch_loop(self) -> None:
        torch.set_num_threads(self.torch_threads)
        while True:
            if self.cuda:
                self.in_flight.acquire()
            batch = self._collect()
            if batch is None:
                return
            started = time.perf_counter_ns()
            try:
                if self.cuda:
                    self._launch(batch, started)
                else:
                    inputs = self._stacked(batch)
                    staged = time.perf_counter_ns()
                    outputs = self.service.run(inputs, checked=True)
                    self._finish(batch, outputs, started, staged, time.perf_counter_ns())
            except Exception as exc:  # the model raised: every job of the batch gets a 500, the engine goes on
                self._fail(batch, exc)
                if self.cuda:
                    self.in_flight.release()

    def _stacked(self, batch: list[_Entry]) -> dict[str, torch.Tensor]:
        if len(batch) == 1:
            return batch[0].inputs
        position = self.service.batch_dim.position
        return {name: torch.cat([e.inputs[name] for e in batch], dim=position) for name in batch[0].inputs}

    def _launch(self, batch: list[_Entry], started: int) -> None:
        """Copy the batch to the GPU on the copy stream, run it on the compute stream, queue the copy back."""
        device, position = self.service.device, self.service.batch_dim.position if self.service.batch_dim else 0
        with torch.cuda.stream(self.copy_stream):
            if len(batch) == 1:
                inputs = {k: v.to(device, non_blocking=True) for k, v in batch[0].inputs.items()}
            else:
                inputs = {}
                for name, first in batch[0].inputs.items():
                    shape = list(first.shape)
                    shape[position] = sum(e.inputs[name].shape[position] for e in batch)
                    target, at = torch.empty(shape, dtype=first.dtype, device=device), 0
                    for entry in batch:  # one DMA per request, from its slot into its rows
                        piece = entry.inputs[name]
                        target.narrow(position, at, piece.shape[position]).copy_(piece, non_blocking=True)
                        at += piece.shape[position]
                    inputs[name] = target
            copied = self.copy_stream.record_event()
        self.compute_stream.wait_event(copied)
        for tensor in inputs.values():  # allocated on the copy stream, used on the compute stream
            tensor.record_stream(self.compute_stream)
        staged = time.perf_counter_ns()
        outputs = self.service.run(inputs, checked=True)
        host = {k: v.to("cpu", non_blocking=True) for k, v in outputs.items()}  # into pinned memory
        self.done.put((batch, host, self.compute_stream.record_event(), started, staged))

    def _completion_loop(self) -> None:
        while (item := self.done.get()) is not None:
            batch, host, event, started, staged = item
            try:
                event.synchronize()  # also keeps each slot unread-from until its copy to the GPU is over
                self._finish(batch, host, started, staged, time.perf_counter_ns())
            except Exception as exc:  # an asynchronous CUDA error surfaces here
                self._fail(batch, exc)
            finally:
                self.in_flight.release()

    def _finish(self, batch: list[_Entry], outputs: dict[str, torch.Tensor], started: int, staged: int, called: int) -> None:
        if len(batch) == 1:
            parts = [outputs]
        else:
            sizes = [e.job.batch for e in batch]
            split = {name: torch.split(value, sizes, dim=self.service.batch_dim.outputs[name]) for name, value in outputs.items()}
            parts = [{name: pieces[i] for name, pieces in split.items()} for i in range(len(batch))]
        replies = []
        for entry, part in zip(batch, parts):
            arena, slot = entry.connection.arena, entry.job.slot
            if not self.cuda and arena is not None:  # an output that is a view of a slot (a model returning its input)
                part = {k: v.clone() if arena.holds(v) else v for k, v in part.items()}  # must not be overwritten
            if slot is not None and arena is not None and arena.fits(list(part.values()), entry.job.slots):
                replies.append(Reply(entry.job.id, refs=arena.write(slot, part)))
            else:
                replies.append(Reply(entry.job.id, tensors={k: v.clone() for k, v in part.items()}))
        finished = time.perf_counter_ns()
        queue_ns = [started - e.enqueued_ns for e in batch]
        call = (sum(e.job.batch for e in batch), sum(e.job.requests for e in batch), (staged - started, called - staged, finished - called))
        replies[0].first = True
        by_connection: dict[_Connection, list[Reply]] = {}
        for entry, reply, waited in zip(batch, replies, queue_ns):
            reply.queue_ns, reply.batch = waited, call
            by_connection.setdefault(entry.connection, []).append(reply)
        for connection, answers in by_connection.items():
            connection.reply(*answers)

    def _fail(self, batch: list[_Entry], exc: Exception) -> None:
        message = first_line(exc, limit=300)
        progress.info(f"error: model `{self.service.name}` raised {type(exc).__name__}: {message}")
        for entry in batch:
            entry.connection.reply(Reply(entry.job.id, error_status=500, error=f"{type(exc).__name__}: {message}"))


class Engine:
    """The models of one server, batched for every front end that connects to `socket_path`.

    Args:
        services: the loaded (and warmed-up) models.
        socket_path: the Unix socket the front ends connect to.
        max_queue_delay_ms, max_queue: as for `DynamicBatcher`, per model.

    Example:
        >>> engine = Engine(load_services(["mlp.aoti.pt2"]), "/tmp/x/engine.sock"); engine.start()
        >>> app = frontend_app(engine.socket_path)  # in each front-end process (pt2kit.serve.engine_client)
        >>> engine.stop()
    """

    def __init__(self, services: Sequence[ModelService], socket_path: str, *, max_queue_delay_ms: float = 0.0, max_queue: int = 1024):
        self.services = {s.name: s for s in services}
        self.socket_path = socket_path
        self.max_queue_delay_ms, self.max_queue = max_queue_delay_ms, max_queue
        self.lanes: dict[str, _Lane] = {}
        self.connections: list[_Connection] = []
        self.readers: list[threading.Thread] = []
        self.listener: socket.socket | None = None
        self.pinned_note = ""

    def info(self) -> dict:
        """What a front end needs to serve each model without loading it."""
        return {name: {"manifest": s.manifest, "max_batch_size": s.max_batch_size, "device": s.device.type, "platform": s.platform,
                       "warm_up_error": s.warm_up_error, "path": str(s.artifact.path), "kind": s.artifact.kind.value}
                for name, s in self.services.items()}

    def start(self) -> None:
        self.lanes = {name: _Lane(s, self.max_queue_delay_ms / 1000, self.max_queue) for name, s in self.services.items()}
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.socket_path)
        self.listener.listen(64)
        self._wake_read, self._wake_write = socket.socketpair()
        self.readers = [threading.Thread(target=self._read_loop, name="pt2kit-engine-reader", daemon=True)]
        self.readers[0].start()

    def stop(self) -> None:
        """Stop reading, run what is queued, answer it, then close every connection."""
        if self.readers:
            self._wake_write.send(b"x")
            self.readers[0].join(timeout=5)
        for lane in self.lanes.values():
            lane.close()
        for connection in self.connections:
            self._closed(connection)

    def _read_loop(self) -> None:
        """The one reader: accepts front ends and reads every front end's jobs, whichever socket has bytes."""
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ, "accept")
        selector.register(self._wake_read, selectors.EVENT_READ, "stop")
        chunk = memoryview(bytearray(1 << 20))
        try:
            while True:
                for key, _ in selector.select():
                    if key.data == "stop":
                        return
                    if key.data == "accept":
                        connection = self._accept()
                        if connection is not None:
                            selector.register(connection.sock, selectors.EVENT_READ, connection)
                        continue
                    connection = key.data
                    try:
                        count = connection.sock.recv_into(chunk)  # readable: returns what is there, at once
                    except OSError:
                        count = 0
                    if count == 0:  # the front end went away
                        selector.unregister(connection.sock)
                        self._closed(connection)
                        continue
                    connection.received += chunk[:count]
                    self._queue_jobs(connection, split_frames(connection.received))
        finally:
            self.listener.close()
            selector.close()
            chunk.release()

    def _accept(self) -> _Connection | None:
        try:
            sock, _ = self.listener.accept()
            sock.settimeout(10)  # the hello follows the connect at once; a peer that sends nothing is dropped
            data, fds, _, _ = socket.recv_fds(sock, HELLO.size, 1)
            sock.settimeout(None)
        except OSError:
            return None
        arena, pinned = None, False
        if len(data) == HELLO.size and fds:
            slots, slot_bytes = HELLO.unpack(data)
            arena = SlotArena.attach(fds[0], slots, slot_bytes)
            pinned = self._pin(arena)
        connection = _Connection(sock, arena, pinned)
        self.connections.append(connection)
        try:
            sock.sendall(frame(self.info()))
        except OSError:
            pass
        return connection

    def _queue_jobs(self, connection: _Connection, jobs: list[Job]) -> None:
        by_lane: dict[str, list[_Entry]] = {}
        for job in jobs:
            lane = self.lanes.get(job.model)
            if lane is None:  # the front end checked the name; a mismatch is a bug, answered as one
                connection.reply(Reply(job.id, error_status=500, error=f"the engine serves no model `{job.model}`"))
                continue
            inputs = connection.arena.read(job.refs) if job.slot is not None else job.tensors
            by_lane.setdefault(job.model, []).append(_Entry(connection, job, inputs, lane.service.group_key_of(inputs)))
        for model, entries in by_lane.items():
            self.lanes[model].put(entries)

    def _closed(self, connection: _Connection) -> None:
        try:
            connection.sock.close()
        except OSError:
            pass
        if connection.pinned:
            connection.pinned = False
            torch.cuda.cudart().cudaHostUnregister(connection.arena.tensor.data_ptr())

    def _pin(self, arena: SlotArena) -> bool:
        """Register `arena` as pinned memory for every CUDA model's copies (False: copies stay pageable)."""
        if not any(s.device.type == "cuda" for s in self.services.values()):
            return False
        size = arena.slots * arena.slot_bytes
        code = torch.cuda.cudart().cudaHostRegister(arena.tensor.data_ptr(), size, 0)
        if int(code) != 0:
            self.pinned_note = f"cudaHostRegister failed ({int(code)}): copies to the GPU are pageable"
            progress.info(f"note: {self.pinned_note}")
            return False
        progress.info(f"engine: a front end's {arena.slots} slots of {arena.slot_bytes} bytes are pinned for copies to the GPU")
        return True


def socket_dir() -> str:
    """A private directory for the engine's socket (mode 0700)."""
    import tempfile

    path = tempfile.mkdtemp(prefix="pt2kit-engine-")
    os.chmod(path, 0o700)
    return path
