"""Run the app with uvicorn: bind, serve, and on SIGTERM or SIGINT stop taking requests, finish those in flight, exit.

uvicorn re-raises a caught SIGTERM after its graceful shutdown, which would end the process with status 143; the
handler installed here absorbs it, so a drained server exits 0.
"""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import dataclass
from typing import Any, Sequence

from pt2kit import progress
from pt2kit.errors import UsageError


@dataclass(frozen=True)
class ServeOptions:
    """What `pt2kit serve` takes besides the artifacts (see `docs/serve.md`)."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_batch_size: int = 32
    max_queue_delay_ms: float = 0.0
    max_queue: int = 1024
    max_body_mb: float = 64.0
    device: str | None = None
    warm_up: bool = True
    drain_timeout_s: float = 30.0
    threads: int | None = None  # torch intra-op threads (default: torch's choice)
    load_options: dict[str, Any] | None = None

    def check(self) -> None:
        """Raise `UsageError` naming the first option out of range."""
        for name, value, low in (("--max-batch-size", self.max_batch_size, 1), ("--max-queue", self.max_queue, 1),
                                 ("--max-queue-delay-ms", self.max_queue_delay_ms, 0), ("--max-body-mb", self.max_body_mb, 0.001),
                                 ("--port", self.port, 0), ("--threads", self.threads or 1, 1)):
            if value < low:
                raise UsageError(f"`{name}` must be at least {low}, got {value}")
        if self.port > 65535:
            raise UsageError(f"`--port` must be at most 65535, got {self.port}")
        if self.device not in (None, "cpu", "cuda"):
            raise UsageError(f"`--device` must be cpu or cuda, got `{self.device}`")


def build_app(artifacts: Sequence[str | os.PathLike], options: ServeOptions = ServeOptions(), names: Sequence[str] | None = None):
    """Load `artifacts` and return the app and its services (errors surface here, before any port is bound)."""
    from pt2kit.serve.app import create_app
    from pt2kit.serve.service import load_services

    options.check()
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    with progress.stage("load " + ", ".join(map(str, artifacts))):
        services = load_services(artifacts, names=names, device=options.device, max_batch_size=options.max_batch_size,
                                 load_options=options.load_options)
    for service in services:
        progress.info(service.describe())
    app = create_app(services, max_queue_delay_ms=options.max_queue_delay_ms, max_queue=options.max_queue,
                     max_body_bytes=int(options.max_body_mb * 1024 * 1024), warm_up=options.warm_up)
    return app, services


def run_server(app, options: ServeOptions = ServeOptions()) -> int:
    """Serve `app` until SIGTERM or SIGINT, then drain and return 0.

    Raises:
        UsageError: the address cannot be bound.
    """
    import uvicorn

    state = getattr(app.state, "pt2kit", None)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            if state is not None:  # requests on open connections get 503 while in-flight ones finish
                state.draining, state.ready = True, False
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=options.host, port=options.port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=options.drain_timeout_s, lifespan="on")
    server = Server(config)
    sock = bind_socket(options.host, options.port)
    absorbed = []
    previous = {sig: signal.signal(sig, lambda s, f: absorbed.append(s)) for sig in (signal.SIGTERM, signal.SIGINT)}
    progress.info(f"serving on http://{options.host}:{options.port} (OpenAPI docs at /docs); SIGTERM or Ctrl-C stops")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    progress.info("stopped: every request in flight was answered")
    return 0


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port`, or a `UsageError` that says what to change."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        raise UsageError(f"cannot serve on {host}:{port} ({exc.strerror or exc}); pass another `--port` or `--host`") from None
    sock.set_inheritable(True)
    return sock
