"""Shared memory between the front-end processes of `--frontends` and the engine process: slots, and the messages.

Each front end owns one `SlotArena`: an anonymous memory file (`os.memfd_create`, so no /dev/shm size limit and
nothing left behind when a process dies) cut into equal slots. It writes a request's input tensors into a free slot
and sends the engine a small message naming the slot; the engine, which received the file's descriptor once over
the Unix socket (`send_fds`), reads the inputs in place (on CUDA it registers the whole arena as pinned memory, so
the copy to the GPU is one DMA straight from the slot) and writes the outputs back into the same slot. A request
that does not fit a slot, or meets no free slot, travels inside its message instead.

A job of several requests takes a run of consecutive slots (`take(count)`), its requests' rows joined in it
(`write_joined`). The messages that name the slots are in `wire`.
"""

from __future__ import annotations

import mmap
import os
from typing import Sequence

import torch

from pt2kit.serve.wire import TensorRef

ALIGN = 64  # every tensor in a slot starts on a cache line (and a valid address for any dtype view)


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def joined_bytes(parts: Sequence[dict[str, torch.Tensor]]) -> int:
    """The bytes `SlotArena.write_joined` takes for `parts`."""
    return sum(_aligned(sum(nbytes(part[name]) for part in parts)) for name in parts[0])


class SlotArena:
    """`slots` slots of `slot_bytes` each in one shared memory file; `tensor` is the whole of it as uint8.

    Create it in the front end (`SlotArena.create`), open the same memory in the engine with `SlotArena.attach(fd)`.
    """

    def __init__(self, fd: int, slots: int, slot_bytes: int):
        self.fd, self.slots, self.slot_bytes = fd, slots, slot_bytes
        self.memory = mmap.mmap(fd, slots * slot_bytes)
        self.tensor = torch.frombuffer(self.memory, dtype=torch.uint8)
        self.used = bytearray(slots)  # 1 per slot in flight; a run of zeros is a free run

    @classmethod
    def create(cls, slots: int, slot_bytes: int) -> "SlotArena":
        slot_bytes = _aligned(slot_bytes)
        fd = os.memfd_create("pt2kit-serve-slots", os.MFD_CLOEXEC)
        os.ftruncate(fd, slots * slot_bytes)
        return cls(fd, slots, slot_bytes)

    @classmethod
    def attach(cls, fd: int, slots: int, slot_bytes: int) -> "SlotArena":
        return cls(fd, slots, slot_bytes)

    def take(self, count: int = 1) -> int | None:
        """The first of `count` free consecutive slots (now in flight), or None when there is no such run."""
        first = self.used.find(bytes(count))
        if first < 0:
            return None
        self.used[first:first + count] = b"\x01" * count
        return first

    def give_back(self, slot: int, count: int = 1) -> None:
        self.used[slot:slot + count] = bytes(count)

    def fits(self, tensors: Sequence[torch.Tensor], count: int = 1) -> bool:
        return sum(_aligned(nbytes(t)) for t in tensors) <= self.slot_bytes * count

    def write(self, slot: int, tensors: dict[str, torch.Tensor]) -> tuple[TensorRef, ...]:
        """Copy `tensors` into `slot` (the caller checked `fits`); their references."""
        offset, refs = slot * self.slot_bytes, []
        for name, value in tensors.items():
            self.view(offset, value.dtype, tuple(value.shape)).copy_(value)
            refs.append(TensorRef(name, value.dtype, tuple(value.shape), offset))
            offset += _aligned(nbytes(value))
        return tuple(refs)

    def write_joined(self, slot: int, parts: Sequence[dict[str, torch.Tensor]], position: int) -> tuple[TensorRef, ...]:
        """Write the tensors of several requests from `slot` on, each input's parts joined along dim `position` (as
        `torch.cat` would; the caller checked that `joined_bytes(parts)` fits); the joined tensors' references."""
        if len(parts) == 1:
            return self.write(slot, parts[0])
        offset, refs = slot * self.slot_bytes, []
        for name, first in parts[0].items():
            shape = list(first.shape)
            shape[position] = sum(part[name].shape[position] for part in parts)
            target, at = self.view(offset, first.dtype, tuple(shape)), 0
            for part in parts:
                rows = part[name].shape[position]
                target.narrow(position, at, rows).copy_(part[name])
                at += rows
            refs.append(TensorRef(name, first.dtype, tuple(shape), offset))
            offset += _aligned(nbytes(target))
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
