"""What the benchmark scripts share: percentiles, the machine line of a record, and a server driven over HTTP.

A script in a topic folder (say `benchmarks/cpu/bench_cpu.py`) puts `benchmarks/` on the path and imports from here:

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common, bench_models
    from common import cpu_model, median, percentile

- Percentiles are `pt2kit.benchmark.timing.percentile` (`numpy.percentile`, linear interpolation), the one `pt2kit
  bench` reports, so a script's p50/p99 mean what bench's do. `median(v)` is `percentile(v, 50)`.
- `cpu_model()`, `utc_now()` and `machine()` give the header every record carries: machine, torch, date.
- `free_port`, `start_server`, `wait_ready`, `stop` run a server (`pt2kit serve`, uvicorn) in a child process;
  `request_bytes` and `drive` are the load generator: keep-alive HTTP/1.1 clients sending pre-encoded requests.
"""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository
BENCHMARKS = ROOT / "benchmarks"


# -- statistics ------------------------------------------------------------------------------------------------------

def percentile(values, q: float) -> float:
    """The q-th percentile (0..100) of `values`, as `pt2kit bench` computes it (numpy, linear); NaN for none."""
    from pt2kit.benchmark.timing import percentile as bench_percentile

    return bench_percentile(list(values), q)


def median(values) -> float:
    """`percentile(values, 50)`: for a list, the same number as `statistics.median`."""
    return percentile(values, 50)


# -- the record's header ---------------------------------------------------------------------------------------------

def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (`platform.processor()` where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def utc_now() -> str:
    """`2026-12-06 16:20 UTC`: the date (and time) a record was made."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def machine() -> dict:
    """Date, CPU, cores, load average, torch and Python versions (and the GPU's name where CUDA is up)."""
    import torch

    found = {"date": utc_now(), "cpu": cpu_model(), "cores": os.cpu_count(),
             "loadavg": [round(x, 2) for x in os.getloadavg()], "torch": torch.__version__,
             "python": platform.python_version()}
    if torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name(0)
    return found


# -- a server in a child process -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_bytes(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """One HTTP/1.1 request, encoded once so that sending it costs the client a few microseconds."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def start_server(cmd: list[str], name: str, port: int, timeout: float = 180, **popen) -> subprocess.Popen:
    """Start `cmd` (a server listening on `port`) and wait until it is ready; see `wait_ready`."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **popen)
    return wait_ready(proc, name, port, timeout)


def wait_ready(proc: subprocess.Popen, kind: str, port: int, timeout: float) -> subprocess.Popen:
    """Poll `GET /v2/health/ready` on 127.0.0.1:`port` until 200; the server's stderr if it exits first."""
    started = time.monotonic()
    while time.monotonic() < started + timeout:
        if proc.poll() is not None:
            raise SystemExit(f"{kind} exited with {proc.returncode}: {proc.stderr.read()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(request_bytes("GET", "/v2/health/ready"))
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    print(f"{kind}: ready after {time.monotonic() - started:.1f} s", file=sys.stderr)
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{kind} not ready after {timeout:g} s")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the server drains), then kill if it has not exited within 120 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- the load generator ----------------------------------------------------------------------------------------------

class Connection:
    """A keep-alive HTTP/1.1 connection sending pre-encoded requests (a few microseconds of client CPU each)."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> "Connection":
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status


async def drive(port: int, raw: bytes, concurrency: int, seconds: float, warmup: float = 0.5) -> dict:
    """`concurrency` clients sending `raw` back to back for `seconds` (after `warmup`); latencies and throughput."""
    connections = [await Connection.open(port) for _ in range(concurrency)]
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    async def client(conn: Connection):
        nonlocal errors
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            status = await conn.send(raw)
            t1 = time.perf_counter()
            if t0 >= measure_from:
                latencies.append(t1 - t0)
                errors += status != 200

    await asyncio.gather(*(client(c) for c in connections))
    for conn in connections:
        conn.writer.close()
    n = len(latencies)
    return {"concurrency": concurrency, "requests": n, "errors": errors, "throughput": n / seconds,
            "p50_ms": percentile(latencies, 50) * 1000 if n else None, "p99_ms": percentile(latencies, 99) * 1000 if n else None}
