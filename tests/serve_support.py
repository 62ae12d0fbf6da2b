"""Helpers for the serve tests: export small programs, run a real uvicorn server on 127.0.0.1 in a thread or a
subprocess, and build OIP requests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import torch

from pt2kit import progress
from pt2kit.cli import main
from pt2kit.serve import ModelService

CASES = Path(__file__).resolve().parent / "cases"


def export(case: str, out: Path, dynamic: str | None) -> Path:
    args = ["export", f"{CASES / case}.py:model", "-o", str(out), "-q"]
    if dynamic:
        args += ["--dynamic", dynamic]
    code = main(args)
    progress.set_quiet(False)
    assert code == 0, f"export of {case} failed"
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """A real uvicorn server for `app` on 127.0.0.1 in a thread; `url` once started."""

    def __init__(self, app, ready_path: str = "/v2/health/ready"):
        import uvicorn

        self.ready_path = ready_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        wait_ready(self.url, path=self.ready_path)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the server did not stop"


def wait_ready(url: str, timeout: float = 180.0, proc: subprocess.Popen | None = None, path: str = "/v2/health/ready") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready after {timeout}s")


@contextlib.contextmanager
def subprocess_server(*args: str, env: dict | None = None):
    """`python -m pt2kit serve ARGS --port P` in a child process (`env` added to its environment); yields (proc, url);
    SIGTERM and wait at the end."""
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.Popen([sys.executable, "-m", "pt2kit", "serve", *map(str, args), "--port", str(port), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc=proc)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def tensor_input(name: str, tensor, binary: bool = False) -> tuple[dict, bytes]:
    """An OIP input entry for `tensor` (JSON data, or binary data returned to append after the JSON)."""
    from pt2kit.serve.protocol import DATATYPES

    entry = {"name": name, "shape": list(tensor.shape), "datatype": DATATYPES[str(tensor.dtype).removeprefix("torch.")]}
    if not binary:
        entry["data"] = tensor.reshape(-1).tolist()
        return entry, b""
    raw = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    entry["parameters"] = {"binary_data_size": len(raw)}
    return entry, raw


class GatedService(ModelService):
    """A real model held at a gate before each call, so tests can fill the queue before a batch forms."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.entered = threading.Event()  # set once a call waits at the gate

    def run_batch(self, requests):
        self.entered.set()
        self.gate.wait(timeout=60)
        return super().run_batch(requests)


def wait_for_queue(app, model: str, depth: int, timeout: float = 60.0) -> None:
    """Wait until `depth` requests wait in `model`'s queue of the app's batcher."""
    backend = app.state.pt2kit.backend
    deadline = time.monotonic() + timeout
    while backend.queue_depth(model) < depth:
        if time.monotonic() > deadline:
            raise AssertionError(f"{backend.queue_depth(model)} requests queued, expected {depth}")
        time.sleep(0.02)
