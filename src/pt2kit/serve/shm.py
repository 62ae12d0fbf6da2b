"""Shared memory between the front-end processes of `--frontends` and the engine process: slots, and the messages.

Each front end owns one `SlotArena`: an anonymous memory file (`os.memfd_create`, so no /dev/shm size limit and
nothing left behind when a process dies) cut into equal slots. It writes a request's input tensors into a free slot
and sends the engine a small message naming the slot; the engine, which received the file's descriptor once over
the Unix socket (`send_fds`), reads the inputs in place (on CUDA it registers the whole arena as pinned memory, so
the copy to the GPU is one DMA straight from the slot) and writes the outputs back into the same slot. A request
that does not fit a slot, or meets no free slot, travels inside its message instead.

Messages are length-prefixed pickles between processes of one server (never from a client or a file):
`Job` (front end -> engine) and `Reply` (engine -> front end).
"""

from __future__ import annotations

import mmap
import os
import pickle
import socket
import struct
from dataclasses import dataclass
from typing import Sequence

import torch

ALIGN = 64  # every tensor in a slot starts on a cache line (and a valid address for any dtype view)
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class TensorRef:
    """A tensor in a slot: its name, dtype, shape and byte offset (into the arena)."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int


@dataclass
class Job:
    """One checked request for the engine: its inputs in `slot` (as `refs`) or inline (`tensors`)."""

    id: int
    model: str
    batch: int
    slot: int | None
    refs: tuple[TensorRef, ...] = ()
    tensors: dict[str, torch.Tensor] | None = None


@dataclass
class Reply:
    """The engine's answer to `Job` `id`: outputs in the job's slot (`refs`) or inline, or an error.

    `error_status` is 503 (the engine's queue is full) or 500 (the model raised); `batch` is the model call the job
    ran in (rows, requests, phase ns), and `first` marks one job of each call, whose front end counts the call itself.
    """

    id: int
    refs: tuple[TensorRef, ...] = ()
    tensors: dict[str, torch.Tensor] | None = None
    error: str = ""
    error_status: int = 0
    queue_ns: int = 0
    batch: tuple = (0, 0, (0, 0, 0))
    first: bool = False


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


class SlotArena:
    """`slots` slots of `slot_bytes` each in one shared memory file; `tensor` is the whole of it as uint8.

    Create it in the front end (`SlotArena.create`), open the same memory in the engine with `SlotArena.attach(fd)`.
    """

    def __init__(self, fd: int, slots: int, slot_bytes: int):
        self.fd, self.slots, self.slot_bytes = fd, slots, slot_bytes
        self.memory = mmap.mmap(fd, slots * slot_bytes)
        self.tensor = torch.frombuffer(self.memory, dtype=torch.uint8)
        self.free = list(range(slots - 1, -1, -1))

    @classmethod
    def create(cls, slots: int, slot_bytes: int) -> "SlotArena":
        slot_bytes = _aligned(slot_bytes)
        fd = os.memfd_create("pt2kit-serve-slots", os.MFD_CLOEXEC)
        os.ftruncate(fd, slots * slot_bytes)
        return cls(fd, slots, slot_bytes)

    @classmethod
    def attach(cls, fd: int, slots: int, slot_bytes: int) -> "SlotArena":
        return cls(fd, slots, slot_bytes)

    def take(self) -> int | None:
        """A free slot, or None when every slot is in flight."""
        return self.free.pop() if self.free else None

    def give_back(self, slot: int) -> None:
        self.free.append(slot)

    def fits(self, tensors: Sequence[torch.Tensor]) -> bool:
        return sum(_aligned(nbytes(t)) for t in tensors) <= self.slot_bytes

    def write(self, slot: int, tensors: dict[str, torch.Tensor]) -> tuple[TensorRef, ...]:
        """Copy `tensors` into `slot` (the caller checked `fits`); their references."""
        offset, refs = slot * self.slot_bytes, []
        for name, value in tensors.items():
            self.view(offset, value.dtype, tuple(value.shape)).copy_(value)
            refs.append(TensorRef(name, value.dtype, tuple(value.shape), offset))
            offset += _aligned(nbytes(value))
        return tuple(refs)

    def view(self, offset: int, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
        """The tensor at `offset` of the arena (shared: no copy)."""
        count = 1
        for size in shape:
            count *= size
        raw = self.tensor[offset:offset + count * torch.empty((), dtype=dtype).element_size()]
        return raw.view(dtype).view(shape)

    def holds(self, tensor: torch.Tensor) -> bool:
        """Whether `tensor` is a view of this arena."""
        return tensor.device.type == "cpu" and tensor.untyped_storage().data_ptr() == self.tensor.untyped_storage().data_ptr()

    def read(self, refs: Sequence[TensorRef]) -> dict[str, torch.Tensor]:
        return {ref.name: self.view(ref.offset, ref.dtype, ref.shape) for ref in refs}

    def close(self) -> None:
        del self.tensor  # the tensor holds an export of the mmap's buffer
        try:
            self.memory.close()
        except BufferError:  # a view is still alive somewhere; the mapping goes with the process
            pass
        os.close(self.fd)


def frame(message) -> bytes:
    """`message` as one length-prefixed pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def recv_message(sock: socket.socket):
    """The next message on a blocking socket, or None when the peer closed it."""
    head = _recv_exactly(sock, _LENGTH.size)
    if head is None:
        return None
    data = _recv_exactly(sock, _LENGTH.unpack(head)[0])
    return None if data is None else pickle.loads(data)  # a peer of this same server, never a client's bytes


async def read_message(reader):
    """The next message on an asyncio stream (raises `asyncio.IncompleteReadError` when the peer closed it)."""
    head = await reader.readexactly(_LENGTH.size)
    return pickle.loads(await reader.readexactly(_LENGTH.unpack(head)[0]))


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    buffer = bytearray(n)
    view, got = memoryview(buffer), 0
    while got < n:
        count = sock.recv_into(view[got:])
        if count == 0:
            return None
        got += count
    return bytes(buffer)
