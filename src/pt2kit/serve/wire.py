"""The messages between the front ends of `--frontends` and the engine: packed structs on the hot path, pickles else.

A frame is a 4-byte length, a 1-byte kind and the payload. A `Job` or `Reply` whose tensors lie in shared memory
(`refs`, see `shm`) travels as a packed struct: a few microseconds to pack or unpack in the engine, whose one process
handles every front end's messages, against tens for a pickle. The hello's model information, a job or reply that
carries its tensors inline, and an error reply travel as pickles (rare, or once per connection). Peers are processes
of the same server, never a client or a file.

A `Job` holds one or more requests of one model, their rows contiguous (the front end joined them), so the engine
handles one message per job and the front end splits the reply back to its requests.
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass

import torch

PICKLE, JOB, REPLY = 0, 1, 2
HEAD = struct.Struct("<IB")  # payload length, kind
_JOB = struct.Struct("<QIIiIBB")  # id, rows, requests, slot (-1: none), slots, model name length, refs
_REPLY = struct.Struct("<QQIIQQQBB")  # id, queue ns, call rows, call requests, 3 phase ns, first, refs
_REF = struct.Struct("<QBBB")  # offset, dtype code, dims, name length
_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8, torch.int8, torch.int16, torch.int32,
           torch.int64, torch.bool, torch.complex64, torch.complex128)
_CODE = {dtype: code for code, dtype in enumerate(_DTYPES)}


@dataclass(frozen=True)
class TensorRef:
    """A tensor in a slot: its name, dtype, shape and byte offset (into the arena)."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int


@dataclass
class Job:
    """`requests` checked requests of `model`, `batch` rows in all: inputs in `slots` slots from `slot` (as `refs`),
    or inline (`tensors`)."""

    id: int
    model: str
    batch: int
    slot: int | None
    refs: tuple[TensorRef, ...] = ()
    tensors: dict[str, torch.Tensor] | None = None
    requests: int = 1
    slots: int = 1


@dataclass
class Reply:
    """The engine's answer to `Job` `id`: outputs in the job's slots (`refs`) or inline, or an error.

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


def _packable(refs: tuple[TensorRef, ...]) -> bool:
    return len(refs) < 256 and all(r.dtype in _CODE and len(r.shape) < 256 and len(r.name.encode()) < 256 for r in refs)


def _pack_refs(refs: tuple[TensorRef, ...]) -> list[bytes]:
    parts = []
    for ref in refs:
        name = ref.name.encode()
        parts += [_REF.pack(ref.offset, _CODE[ref.dtype], len(ref.shape), len(name)), name,
                  struct.pack(f"<{len(ref.shape)}q", *ref.shape)]
    return parts


def _unpack_refs(data, at: int, count: int) -> tuple[TensorRef, ...]:
    refs = []
    for _ in range(count):
        offset, code, dims, length = _REF.unpack_from(data, at)
        at += _REF.size
        name = bytes(data[at:at + length]).decode()
        at += length
        shape = struct.unpack_from(f"<{dims}q", data, at)
        at += 8 * dims
        refs.append(TensorRef(name, _DTYPES[code], shape, offset))
    return tuple(refs)


def frame(message) -> bytes:
    """`message` as one frame: packed when it is a `Job` or `Reply` in shared memory, else a pickle."""
    if isinstance(message, Job) and message.tensors is None and message.slot is not None and _packable(message.refs):
        model = message.model.encode()
        if len(model) < 256:
            parts = [_JOB.pack(message.id, message.batch, message.requests, message.slot, message.slots, len(model),
                               len(message.refs)), model, *_pack_refs(message.refs)]
            return _framed(JOB, b"".join(parts))
    if isinstance(message, Reply) and message.tensors is None and not message.error and _packable(message.refs):
        rows, requests, phases = message.batch
        parts = [_REPLY.pack(message.id, message.queue_ns, rows, requests, *phases, message.first, len(message.refs)),
                 *_pack_refs(message.refs)]
        return _framed(REPLY, b"".join(parts))
    return _framed(PICKLE, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _framed(kind: int, payload: bytes) -> bytes:
    return HEAD.pack(len(payload), kind) + payload


def decode(kind: int, payload):
    """The message of one frame's `payload` (bytes or a memoryview)."""
    if kind == JOB:
        id_, rows, requests, slot, slots, model_length, count = _JOB.unpack_from(payload, 0)
        at = _JOB.size + model_length
        model = bytes(payload[_JOB.size:at]).decode()
        return Job(id_, model, rows, slot, _unpack_refs(payload, at, count), requests=requests, slots=slots)
    if kind == REPLY:
        id_, queue_ns, rows, requests, p0, p1, p2, first, count = _REPLY.unpack_from(payload, 0)
        return Reply(id_, _unpack_refs(payload, _REPLY.size, count), queue_ns=queue_ns, batch=(rows, requests, (p0, p1, p2)),
                     first=bool(first))
    return pickle.loads(payload)  # a peer of this same server, never a client's bytes


def split_frames(buffer: bytearray) -> list:
    """The whole frames at the start of `buffer`, decoded; they are removed from it, a partial frame stays."""
    messages, at, view = [], 0, memoryview(buffer)
    try:
        while len(buffer) - at >= HEAD.size:
            length, kind = HEAD.unpack_from(buffer, at)
            end = at + HEAD.size + length
            if end > len(buffer):
                break
            messages.append(decode(kind, view[at + HEAD.size:end]))
            at = end
    finally:
        view.release()
    del buffer[:at]
    return messages


def recv_message(sock):
    """The next message on a blocking socket, or None when the peer closed it."""
    head = _recv_exactly(sock, HEAD.size)
    if head is None:
        return None
    length, kind = HEAD.unpack(head)
    data = _recv_exactly(sock, length)
    return None if data is None else decode(kind, data)


async def read_message(reader):
    """The next message on an asyncio stream (raises `asyncio.IncompleteReadError` when the peer closed it)."""
    length, kind = HEAD.unpack(await reader.readexactly(HEAD.size))
    return decode(kind, await reader.readexactly(length))


def _recv_exactly(sock, n: int) -> bytes | None:
    buffer = bytearray(n)
    view, got = memoryview(buffer), 0
    while got < n:
        count = sock.recv_into(view[got:])
        if count == 0:
            return None
        got += count
    return bytes(buffer)
