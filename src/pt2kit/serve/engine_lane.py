"""The engine's side of one model (`--frontends`): its queue of jobs, its batch thread and, on CUDA, its completion thread.

`Lane.put` queues the jobs the engine's reader read; the batch thread takes the oldest job and the queued ones of its
group up to `max_batch_size` rows within the delay, and runs them (see `engine` for the copies on CUDA); each job's
answer goes into its slots and back to its front end, one write per front end per batch. At light load a lone job
that finds the lane idle runs on the reader's thread itself (`try_run_alone`), sparing two thread hand-offs.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import torch

from pt2kit import progress
from pt2kit.errors import first_line
from pt2kit.serve.service import ModelService
from pt2kit.serve.shm import SlotArena
from pt2kit.serve.wire import Job, Reply, frame


@dataclass
class Entry:
    connection: "Connection"
    job: Job
    inputs: dict[str, torch.Tensor]
    key: tuple
    enqueued_ns: int = field(default_factory=time.perf_counter_ns)


class Connection:
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


class Lane:
    """The queue, batch thread and (CUDA) completion thread of one model."""

    def __init__(self, service: ModelService, max_delay_s: float, max_queue: int):
        self.service, self.max_delay_s, self.max_queue = service, max_delay_s, max_queue
        self.pending: deque[Entry] = deque()
        self.cond = threading.Condition()
        self.closing = False
        self.cuda = service.device.type == "cuda"
        self.done: queue.Queue = queue.Queue()  # batches launched on the GPU, for the completion thread
        # two batches in flight: the next one is copied in while one computes, and is collected as late as possible
        # (so it holds every request that came meanwhile)
        self.in_flight = threading.Semaphore(2)
        self.active = 0  # batches taken from the queue and not yet answered (under `cond`)
        self.alone = False  # the reader thread is running a lone job itself (under `cond`)
        if self.cuda:
            self.copy_stream = torch.cuda.Stream(service.device)
            self.compute_stream = torch.cuda.current_stream(service.device)
        self.torch_threads = torch.get_num_threads()  # `--threads`, set in the main thread; OpenMP keeps it per thread
        self.threads = [threading.Thread(target=self._batch_loop, name=f"pt2kit-engine-{service.name}", daemon=True)]
        if self.cuda:
            self.threads.append(threading.Thread(target=self._completion_loop, name=f"pt2kit-engine-{service.name}-out", daemon=True))
        for thread in self.threads:
            thread.start()

    def put(self, entries: list[Entry]) -> None:
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

    def try_run_alone(self, entries: list[Entry]) -> bool:
        """Run a lone job on the calling (reader) thread if the lane is idle: at light load this spares the hand-off
        to the batch thread and, on CUDA, to the completion thread (two thread wake-ups per request). False: queue it."""
        if len(entries) != 1 or self.max_delay_s > 0:
            return False
        with self.cond:
            if self.active or self.pending or self.alone or self.closing:
                return False
            self.alone, self.active = True, self.active + 1
        try:
            self._run(entries, wait=True)
        finally:
            with self.cond:
                self.alone, self.active = False, self.active - 1
                self.cond.notify_all()
        return True

    def close(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        self.threads[0].join()
        if self.cuda:
            self.done.put(None)
            self.threads[1].join()

    def _collect(self) -> list[Entry] | None:
        limit = self.service.max_batch_size
        with self.cond:
            while not self.pending or self.alone:  # the model runs one batch at a time from this side
                if self.closing and not self.alone:
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
            self.active += 1
            return batch

    def _batch_loop(self) -> None:
        torch.set_num_threads(self.torch_threads)
        while True:
            if self.cuda:
                self.in_flight.acquire()
            batch = self._collect()
            if batch is None:
                return
            if not self._run(batch, wait=not self.cuda):  # answered here (the CPU, or a launch that failed)
                self._answered()
                if self.cuda:
                    self.in_flight.release()

    def _run(self, batch: list[Entry], wait: bool) -> bool:
        """Run `batch` and answer it; on CUDA without `wait`, hand it to the completion thread (True) instead."""
        started = time.perf_counter_ns()
        try:
            if not self.cuda:
                inputs = self._stacked(batch)
                staged = time.perf_counter_ns()
                outputs = self.service.run(inputs, checked=True)
                self._finish(batch, outputs, started, staged, time.perf_counter_ns())
                return False
            launched = self._launch(batch, started)
        except Exception as exc:  # the model raised: every job of the batch gets a 500, the engine goes on
            self._fail(batch, exc)
            return False
        if not wait:
            self.done.put(launched)
            return True
        self._complete(launched)
        return False

    def _answered(self) -> None:
        with self.cond:
            self.active -= 1
            self.cond.notify_all()

    def _stacked(self, batch: list[Entry]) -> dict[str, torch.Tensor]:
        if len(batch) == 1:
            return batch[0].inputs
        position = self.service.batch_dim.position
        return {name: torch.cat([e.inputs[name] for e in batch], dim=position) for name in batch[0].inputs}

    def _launch(self, batch: list[Entry], started: int) -> tuple:
        """Copy the batch to the GPU on the copy stream, run it on the compute stream, start the copy back; what
        `_complete` needs to answer it."""
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
        return batch, host, self.compute_stream.record_event(), started, staged

    def _completion_loop(self) -> None:
        while (launched := self.done.get()) is not None:
            self._complete(launched)
            self._answered()
            self.in_flight.release()

    def _complete(self, launched: tuple) -> None:
        batch, host, event, started, staged = launched
        try:
            event.synchronize()  # also keeps each slot unread-from until its copy to the GPU is over
            self._finish(batch, host, started, staged, time.perf_counter_ns())
        except Exception as exc:  # an asynchronous CUDA error surfaces here
            self._fail(batch, exc)

    def _finish(self, batch: list[Entry], outputs: dict[str, torch.Tensor], started: int, staged: int, called: int) -> None:
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
        by_connection: dict[Connection, list[Reply]] = {}
        for entry, reply, waited in zip(batch, replies, queue_ns):
            reply.queue_ns, reply.batch = waited, call
            by_connection.setdefault(entry.connection, []).append(reply)
        for connection, answers in by_connection.items():
            connection.reply(*answers)

    def _fail(self, batch: list[Entry], exc: Exception) -> None:
        message = first_line(exc, limit=300)
        progress.info(f"error: model `{self.service.name}` raised {type(exc).__name__}: {message}")
        for entry in batch:
            entry.connection.reply(Reply(entry.job.id, error_status=500, error=f"{type(exc).__name__}: {message}"))
