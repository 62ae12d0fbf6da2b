"""The batching engine of `pt2kit serve --frontends N`: one process owns the models, the front ends hand it tensors.

Front-end processes (uvicorn HTTP and gRPC, see `engine_client`) parse and check requests, join the ones that
arrived while their previous jobs were in flight into one job, write its rows into their shared-memory slots (`shm`)
and send a `Job` naming the slots over a Unix socket (`wire`: a packed struct). Here, one reader thread watches every
front end's socket (`selectors`) and queues the jobs per model (`engine_lane.Lane`); one batch thread per model takes
the oldest job and the queued ones of its group (equal sizes but for the batch dim) up to `max_batch_size` rows within
`max_queue_delay_ms`, and runs them, so the engine's work is per job (a few per batch), not per request. A lone job
that finds its model idle runs on the reader thread itself (light load: two thread hand-offs fewer).

- on the CPU, in place: one job's inputs are its slots (no stacking), several are concatenated once;
- on CUDA, the inputs go to the GPU on a copy stream, straight from the slots (registered as pinned memory; a
  pageable copy where registration fails), and the model runs on the compute stream once they are there. The
  outputs come back with non-blocking copies into pinned memory, and a completion thread waits for them, writes
  them into each job's slot and replies, while the batch thread already copies the next batch in: copies overlap
  compute.

The front ends checked every input against the manifest, so the model is called without checking them again.
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import threading
from typing import Sequence

import torch

from pt2kit import progress
from pt2kit.serve.engine_lane import Connection, Entry, Lane
from pt2kit.serve.service import ModelService
from pt2kit.serve.shm import SlotArena
from pt2kit.serve.wire import Job, Reply, frame, split_frames

HELLO = struct.Struct("<QQ")  # a front end's first bytes: its arena's slot count and slot size (its fd rides along)


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
        self.lanes: dict[str, Lane] = {}
        self.connections: list[Connection] = []
        self.readers: list[threading.Thread] = []
        self.listener: socket.socket | None = None
        self.pinned_note = ""

    def info(self) -> dict:
        """What a front end needs to serve each model without loading it."""
        return {name: {"manifest": s.manifest, "max_batch_size": s.max_batch_size, "device": s.device.type, "platform": s.platform,
                       "warm_up_error": s.warm_up_error, "path": str(s.artifact.path), "kind": s.artifact.kind.value}
                for name, s in self.services.items()}

    def start(self) -> None:
        self.lanes = {name: Lane(s, self.max_queue_delay_ms / 1000, self.max_queue) for name, s in self.services.items()}
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.socket_path)
        self.listener.listen(64)
        self._wake_read, self._wake_write = socket.socketpair()
        self.torch_threads = torch.get_num_threads()  # `--threads`, for a lone job run on the reader thread
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
        torch.set_num_threads(self.torch_threads)
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

    def _accept(self) -> Connection | None:
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
        connection = Connection(sock, arena, pinned)
        self.connections.append(connection)
        try:
            sock.sendall(frame(self.info()))
        except OSError:
            pass
        return connection

    def _queue_jobs(self, connection: Connection, jobs: list[Job]) -> None:
        by_lane: dict[str, list[Entry]] = {}
        for job in jobs:
            lane = self.lanes.get(job.model)
            if lane is None:  # the front end checked the name; a mismatch is a bug, answered as one
                connection.reply(Reply(job.id, error_status=500, error=f"the engine serves no model `{job.model}`"))
                continue
            inputs = connection.arena.read(job.refs) if job.slot is not None else job.tensors
            by_lane.setdefault(job.model, []).append(Entry(connection, job, inputs, lane.service.group_key_of(inputs)))
        for model, entries in by_lane.items():
            lane = self.lanes[model]
            if not lane.try_run_alone(entries):
                lane.put(entries)

    def _closed(self, connection: Connection) -> None:
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
