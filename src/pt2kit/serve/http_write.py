"""One socket write per HTTP response: uvicorn's httptools protocol with the status line and headers held for the body.

uvicorn writes a response's status line and headers when the app sends `http.response.start`, and the body with
`http.response.body`: two `send` system calls per response, each of which (on loopback) also runs the receiving side's
TCP work, about 130 us each on the 2-core development VM (benchmarks/serve/serve.md). `OneWriteHttpTools` wraps the
connection's transport so that a write that is a response head waits for the next write (the body) and both go as
one. A held head never waits past the current event-loop step (a `call_soon` flushes it), so a response whose body
never comes, an interim `100 Continue` (never held) and a closing connection behave as before.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_LARGE = 64 * 1024  # above this a head and body go with `writelines` (no join copy) instead of one joined write


class _HeadHoldingTransport:
    """`transport`, but a response head (`HTTP/1.1 <status> ...` ending in a blank line) is sent with the next write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport, self._loop = transport, loop
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._head is None:
            if data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n") and not data.startswith(b"HTTP/1.1 100 "):
                self._head = data
                self._loop.call_soon(self.flush)
            else:
                self._transport.write(data)
            return
        head, self._head = self._head, None
        if len(data) > _LARGE:
            self._transport.writelines((head, data))
        else:
            self._transport.write(head + data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(head)

    def writelines(self, chunks) -> None:
        self.flush()
        self._transport.writelines(chunks)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):  # everything else (flow control, peer address, is_closing) as the transport's
        return getattr(self._transport, name)


class OneWriteHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, one socket write per response (pass as `uvicorn.Config(http=...)`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_HeadHoldingTransport(transport, self.loop))
