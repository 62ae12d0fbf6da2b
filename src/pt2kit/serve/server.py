"""Run the app with uvicorn: bind, serve, and on SIGTERM or SIGINT stop taking requests, finish those in flight, exit.

uvicorn re-raises a caught SIGTERM after its graceful shutdown, which would end the process with status 143; the
handler installed here absorbs it, so a drained server exits 0. A server whose start-up failed, or whose drain ran
past `drain_timeout_s` and cut requests off, says so and exits 1.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
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
    grpc_port: int | None = None  # also serve OIP v2 over gRPC on this port (the `grpc` extra)
    workers: int = 1  # server processes sharing the ports, each with its own model instance and batcher
    reuse_port: bool = False  # bind with SO_REUSEPORT (set in each process of `workers` > 1)
    frontends: int = 0  # > 0: this many HTTP/gRPC front-end processes hand requests to one engine process (engine.py)
    engine_socket: str | None = None  # set in each front end of `frontends`: the engine's Unix socket
    load_options: dict[str, Any] | None = None

    def check(self) -> None:
        """Raise `UsageError` naming the first option out of range."""
        for name, value, low in (("--max-batch-size", self.max_batch_size, 1), ("--max-queue", self.max_queue, 1),
                                 ("--max-queue-delay-ms", self.max_queue_delay_ms, 0), ("--max-body-mb", self.max_body_mb, 0.001),
                                 ("--port", self.port, 0), ("--threads", self.threads or 1, 1),
                                 ("--drain-timeout", self.drain_timeout_s, 0), ("--workers", self.workers, 1),
                                 ("--frontends", self.frontends, 0)):
            if value < low:
                raise UsageError(f"`{name}` must be at least {low}, got {value}")
        if self.frontends and self.workers > 1:
            raise UsageError("`--frontends` and `--workers` are two designs of one server; pass one of them "
                             f"(e.g. `--frontends {self.frontends}` alone)")
        if self.port > 65535:
            raise UsageError(f"`--port` must be at most 65535, got {self.port}")
        if self.grpc_port is not None:
            if not 0 < self.grpc_port <= 65535 or self.grpc_port == self.port:
                raise UsageError(f"`--grpc-port` must be a port from 1 to 65535 other than `--port`, got {self.grpc_port}")
            try:
                import grpc  # noqa: F401
                from tritonclient.grpc import service_pb2  # noqa: F401
            except ImportError as exc:
                raise UsageError(f"`--grpc-port` needs {exc.name}; install the grpc extra: `pip install 'pt2kit[grpc]'`") from None
        if self.device not in (None, "cpu", "cuda"):
            raise UsageError(f"`--device` must be cpu or cuda, got `{self.device}`")


def build_app(artifacts: Sequence[str | os.PathLike], options: ServeOptions = ServeOptions(), names: Sequence[str] | None = None):
    """Load `artifacts` and return the app and its services (errors surface here, before any port is bound)."""
    from pt2kit.serve.app import create_app

    options.check()
    if options.engine_socket:
        return _frontend_app(options)
    if options.grpc_port is not None:  # fail before loading anything rather than after: the gRPC server binds at start-up
        bind_socket(options.host, options.grpc_port, flag="--grpc-port", reuse_port=options.reuse_port).close()
    services = _load(artifacts, options, names)
    warm_up = options.warm_up
    if options.reuse_port and warm_up:  # a worker of --workers warms up before it listens: the kernel hands new
        warm_up = False                 # connections to every listening worker, and none should meet a cold model
        for service in services:
            service.try_warm_up()
    app = create_app(services, max_queue_delay_ms=options.max_queue_delay_ms, max_queue=options.max_queue,
                     max_body_bytes=int(options.max_body_mb * 1024 * 1024), warm_up=warm_up,
                     grpc_port=options.grpc_port, grpc_host=options.host, drain_timeout_s=options.drain_timeout_s,
                     grpc_reuse_port=options.reuse_port)
    return app, services


def _load(artifacts: Sequence[str | os.PathLike], options: ServeOptions, names: Sequence[str] | None):
    from pt2kit.serve.service import load_services

    load_options = dict(options.load_options or {})
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
        load_options["threads"] = options.threads  # `--threads` wins over the thread count a tuned manifest records
    with progress.stage("load " + ", ".join(map(str, artifacts))):
        services = load_services(artifacts, names=names, device=options.device, max_batch_size=options.max_batch_size,
                                 load_options=load_options)
    for service in services:
        progress.info(service.describe())
    return services


def _frontend_app(options: ServeOptions):
    """A front end of `--frontends`: the app over the engine's models, its requests run by the engine."""
    import torch

    from pt2kit.serve.engine_client import frontend_app

    torch.set_num_threads(1)  # a front end only copies tensors; the engine's process has the threads
    if options.grpc_port is not None:
        bind_socket(options.host, options.grpc_port, flag="--grpc-port", reuse_port=options.reuse_port).close()
    def engine_lost():  # the engine process died (it drains after its front ends): stop, as SIGTERM does
        progress.info("error: the engine process is gone; this front end stops")
        os.kill(os.getpid(), signal.SIGTERM)

    app = frontend_app(options.engine_socket, on_engine_lost=engine_lost, max_queue_delay_ms=options.max_queue_delay_ms,
                       max_body_bytes=int(options.max_body_mb * 1024 * 1024), grpc_port=options.grpc_port, grpc_host=options.host,
                       drain_timeout_s=options.drain_timeout_s, grpc_reuse_port=options.reuse_port)
    return app, list(app.state.pt2kit.services.values())


def run_server(app, options: ServeOptions = ServeOptions()) -> int:
    """Serve `app` until SIGTERM or SIGINT, then drain and return 0; 1 when start-up failed or the drain timed out.

    Raises:
        UsageError: the address cannot be bound.
    """
    import uvicorn

    from pt2kit.serve.http_write import OneWriteHttpTools

    state = getattr(app.state, "pt2kit", None)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            if state is not None:  # requests on open connections get 503 while in-flight ones finish
                state.draining, state.ready = True, False
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, host=options.host, port=options.port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=options.drain_timeout_s, lifespan="on", http=OneWriteHttpTools)
    server = Server(config)
    sock = bind_socket(options.host, options.port, reuse_port=options.reuse_port)
    absorbed = []
    previous = {sig: signal.signal(sig, lambda s, f: absorbed.append(s)) for sig in (signal.SIGTERM, signal.SIGINT)}
    progress.info(f"serving on http://{options.host}:{options.port} (OpenAPI docs at /docs); SIGTERM or Ctrl-C stops")
    try:
        server.run(sockets=[sock])
    except SystemExit:  # uvicorn exits 3 when the app's start-up (lifespan) fails; say so below instead
        server.started = False
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:  # printed even with -q: the exit status alone would not say why
        print("error: the server did not start (its start-up failed, see above); nothing was served", file=sys.stderr)
        return 1
    cut_off = state.cut_off if state is not None else 0
    if cut_off:
        print(f"error: the drain timed out after {options.drain_timeout_s:g} s and {cut_off} request(s) in flight were cut off "
              "(answered 503); give the server a longer `--drain-timeout`", file=sys.stderr)
        return 1
    progress.info("stopped: every request in flight was answered")
    return 0


def bind_socket(host: str, port: int, flag: str = "--port", reuse_port: bool = False) -> socket.socket:
    """A listening socket on `host:port`, or a `UsageError` that says what to change."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # several worker processes on one port: the kernel spreads connections over them
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        raise UsageError(f"cannot serve on {host}:{port} ({exc.strerror or exc}); pass another `{flag}` or `--host`") from None
    sock.set_inheritable(True)
    return sock


def run_workers(command: Sequence[str], options: ServeOptions, env: dict[str, str] | None = None) -> int:
    """Run `options.workers` copies of the serve `command` (argv after `pt2kit`, `env` added to the environment, which
    must make each bind with SO_REUSEPORT) on the same ports.

    Each process loads its own instance of every model (Triton's instance groups, as processes), parses and encodes
    its own requests and batches them on its own: one Python process is no longer the ceiling. The kernel spreads
    new connections over the processes; `/metrics` and the statistics answer for the process that answers. SIGTERM or
    SIGINT reaches every process, which drains as one server does; the status is the worst of theirs.
    """
    import subprocess

    options.check()
    _check_ports(options)
    children = [subprocess.Popen([sys.executable, "-m", "pt2kit", *command, "--workers", "1"], env={**os.environ, **(env or {})})
                for _ in range(options.workers)]
    progress.info(f"{options.workers} worker processes serve http://{options.host}:{options.port}"
                  + (f" and gRPC on {options.grpc_port}" if options.grpc_port else ""))
    return _status(_wait_forwarding_signals(children), "worker")


def _check_ports(options: ServeOptions) -> None:
    """Say now, in one line, if a port is taken (the child processes would each fail on it)."""
    for port, flag in ((options.port, "--port"), (options.grpc_port, "--grpc-port")):
        if port is not None:
            bind_socket(options.host, port, flag=flag, reuse_port=True).close()


def _wait_forwarding_signals(children: list) -> list[int]:
    """Wait for every child process, passing SIGTERM and SIGINT on to those still running; their exit statuses.

    A child that the forwarded signal itself ended (one still starting, which had taken no request) stopped cleanly: 0.
    """
    forwarded: set[int] = set()

    def forward(sig, frame):
        forwarded.add(sig)
        for child in children:
            if child.poll() is None:
                child.send_signal(sig)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return [0 if -child.wait() in forwarded else child.returncode for child in children]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _status(codes: list[int], what: str) -> int:
    """0 when every child exited 0; else 1, with the statuses on stderr."""
    if any(codes):
        print(f"error: {what} exit statuses {codes}; see each one's message above", file=sys.stderr)
        return 1
    return 0


def run_with_engine(artifacts: Sequence[str | os.PathLike], command: Sequence[str], options: ServeOptions,
                    names: Sequence[str] | None = None, env: dict[str, str] | None = None,
                    engine_env: str = "PT2KIT_SERVE_ENGINE") -> int:
    """Serve `artifacts` with one engine process (this one) and `options.frontends` front-end processes.

    This process loads and warms up every model and runs the `Engine` (`pt2kit.serve.engine`): one batcher per model,
    copies to the GPU overlapping compute. The front ends (the serve `command`, argv after `pt2kit`, run with `env`,
    which must make each bind with SO_REUSEPORT, and the engine's socket in `engine_env`) share the ports, parse, check and
    encode requests, and hand tensors to the engine through shared memory. SIGTERM or SIGINT drains the front ends,
    then the engine; the status is the worst of theirs.

    Raises:
        UsageError: a port is taken, or an option or artifact is wrong (before anything is served).
    """
    import shutil
    import subprocess

    from pt2kit.serve.engine import Engine, socket_dir

    options.check()
    _check_ports(options)
    services = _load(artifacts, options, names)
    for service in services:
        if options.warm_up:
            service.try_warm_up()
        else:
            service.ready = True
    directory = socket_dir()
    engine = Engine(services, os.path.join(directory, "engine.sock"), max_queue_delay_ms=options.max_queue_delay_ms,
                    max_queue=options.max_queue)
    engine.start()
    children = [subprocess.Popen([sys.executable, "-m", "pt2kit", *command],
                                 env={**os.environ, **(env or {}), engine_env: engine.socket_path}) for _ in range(options.frontends)]
    progress.info(f"one engine process and {options.frontends} front-end processes serve http://{options.host}:{options.port}"
                  + (f" and gRPC on {options.grpc_port}" if options.grpc_port else ""))

    try:
        codes = _wait_forwarding_signals(children)
    finally:
        engine.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return _status(codes, "front-end")
