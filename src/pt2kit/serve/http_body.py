"""Request and response bodies over HTTP: the size limit, a bound on the bytes being read at once, `Content-Encoding`
(gzip, deflate) of requests and `Accept-Encoding` of responses.

A body over the limit is answered 413 only after what the client still sends has been read and dropped (up to
`DISCARD_BYTES`): closing a socket with unread data makes the kernel reset the connection, and the client would see
a reset instead of the 413. Compressed bodies are inflated with a bound, so a small gzip bomb is a 413 too.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib

from starlette.requests import ClientDisconnect, Request

DISCARD_BYTES = 64 * 1024 * 1024  # past the limit, read and drop at most this much before answering 413 and closing
OFF_LOOP_BYTES = 256 * 1024  # bodies at least this large are inflated, decoded and encoded on a thread
COMPRESS_MIN_BYTES = 1024  # smaller responses go uncompressed, whatever the client accepts
_WBITS = {"gzip": 31, "x-gzip": 31, "deflate": 15}


class BodyError(Exception):
    """A body the server refuses: `status` (400, 413, 415) and a one-line message."""

    def __init__(self, message: str, status: int, close: bool = False):
        super().__init__(message)
        self.status = status
        self.close = close  # answer with `Connection: close` (the rest of the body was not read)


class BodyBudget:
    """Bounds the bytes of request bodies being read and decoded at once; a request waits until its share fits.

    A request reserves its `Content-Length` (the limit when it sends none or compresses), so many clients sending large
    bodies at once queue here instead of holding every body in memory together.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._changed: asyncio.Condition | None = None

    @contextlib.asynccontextmanager
    async def reserve(self, size: int):
        size = max(0, min(size, self.limit))
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            await self._changed.wait_for(lambda: self.used == 0 or self.used + size <= self.limit)
            self.used += size
        try:
            yield
        finally:
            async with self._changed:
                self.used -= size
                self._changed.notify_all()


def reservation(request: Request, limit: int) -> int:
    """How many bytes of the budget a request reserves before its body is read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and request.headers.get("content-encoding", "identity").strip().lower() == "identity":
        return int(declared)
    return limit


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, inflated when it says `Content-Encoding: gzip` or `deflate`.

    Raises:
        BodyError: the body (or what it inflates to) is over `limit` (413), the encoding is unknown (415), or the
            client went away or sent a bad `Content-Length` (400).
    """
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in _WBITS and encoding != "identity":
        raise BodyError(f"`Content-Encoding: {encoding[:20]}` is not supported; send the body uncompressed, gzip or deflate", 415)
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise BodyError("header `Content-Length` must be a number", 400)
    chunks, size = [], 0
    stream = request.stream()
    try:
        if declared is not None and int(declared) > limit:
            await _discard(stream, 0)
            raise too_large(limit, close=int(declared) > DISCARD_BYTES)
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                closed = await _discard(stream, size)
                raise too_large(limit, close=closed)
            chunks.append(chunk)
    except ClientDisconnect:
        raise BodyError("the client closed the connection before sending the whole body", 400) from None
    body = b"".join(chunks)
    if encoding == "identity":
        return body
    if len(body) >= OFF_LOOP_BYTES:
        return await asyncio.to_thread(inflate, body, encoding, limit)
    return inflate(body, encoding, limit)


async def _discard(stream, read: int) -> bool:
    """Read and drop the rest of the body, up to `DISCARD_BYTES` in all; True if some was left unread."""
    async for chunk in stream:
        read += len(chunk)
        if read > DISCARD_BYTES:
            return True
    return False


def too_large(limit: int, close: bool = False) -> BodyError:
    return BodyError(f"the body is over the limit of {limit} bytes; send smaller batches or start the server with a larger "
                     "`--max-body-mb`", 413, close)


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """`body` decompressed (gzip, or deflate as zlib or raw data), refusing more than `limit` bytes out."""
    for wbits in (_WBITS[encoding], -15) if encoding == "deflate" else (_WBITS[encoding],):
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit or inflater.unconsumed_tail:
            raise too_large(limit)
        if not inflater.eof:
            raise BodyError(f"the body is not complete {encoding} data; compress the whole body or send it uncompressed", 400)
        return out
    raise BodyError(f"the body is not valid {encoding} data (`Content-Encoding: {encoding}`); compress it so or drop the header", 400)


def accepted_encoding(accept: str | None) -> str | None:
    """The response encoding to use for an `Accept-Encoding` header: gzip, then deflate, else None."""
    if not accept:
        return None
    accepted = set()
    for part in accept.lower().split(","):
        name, _, params = part.strip().partition(";")
        if params.strip().replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            continue
        accepted.add(name.strip())
    return next((e for e in ("gzip", "deflate") if e in accepted), None)


def compress(content: bytes, encoding: str) -> bytes:
    """`content` as gzip or zlib-wrapped deflate (what HTTP calls deflate), at a fast level."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, _WBITS[encoding])
    return compressor.compress(content) + compressor.flush()
