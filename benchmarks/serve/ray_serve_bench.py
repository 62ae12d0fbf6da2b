"""Throughput of `pt2kit serve --ray` with 1 and 2 replicas, side by side with `pt2kit serve` alone, in one run.

Builds the MLP package of benchmarks/serve/serve_bench.py (cached), then starts each server in turn from the CLI, in its own
process on 127.0.0.1, and drives it from this process with serve_bench.py's load generator (keep-alive connections,
pre-encoded OIP requests of batch 1) at each concurrency, and with `GET /v2/health/live` (no model: the HTTP path
alone) at 1 and 32 clients:

  serve     `pt2kit serve PKG --max-batch-size 64 --threads 1`                      (uvicorn, asyncio batcher)
  ray-1     `pt2kit serve PKG --ray --num-replicas 1 --max-batch-size 64 --threads 1`  (local Ray, @serve.batch)
  ray-2     the same with `--num-replicas 2`
  ray-1-base / ray-2-base   the same with RAY_SERVE_THROUGHPUT_OPTIMIZED=0: Ray Serve's default settings, as
            `--ray` ran before it turned on Serve's throughput-optimized mode (e.g. `--servers ray-1-base,ray-1`)

Each `--ray` server starts its own local Ray (bound to 127.0.0.1, no dashboard) and stops it on SIGTERM.

    .venv/bin/python benchmarks/serve/ray_serve_bench.py --seconds 4 --json out/ray_serve_bench.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "serve"))

sys.path.insert(0, str(ROOT / "benchmarks"))

from common import drive, free_port, machine, request_bytes, start_server, stop  # noqa: E402  (the same load generator)
from serve_bench import build_package_path  # noqa: E402


def start(kind: str, package: Path, port: int, threads: int, batch: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pt2kit", "serve", str(package), "--name", "mlp", "--port", str(port),
           "--max-batch-size", str(batch), "--threads", str(threads), "-q"]
    env = dict(os.environ)
    if kind.startswith("ray-"):
        cmd += ["--ray", "--num-replicas", kind.split("-")[1]]
        if kind.endswith("-base"):
            env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "0"  # pt2kit never replaces a value the environment sets
    return start_server(cmd, kind, port, timeout=300, cwd=ROOT, env=env)


def server_timings(port: int) -> dict[str, tuple[float, float]]:
    """(sum, count) of the answering server's request, queue and inference histograms, from its `/metrics`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request_bytes("GET", "/metrics").replace(b"HTTP/1.1", b"HTTP/1.0", 1))
        text = b""
        while chunk := s.recv(65536):
            text += chunk
    found = {}
    for line in text.decode(errors="replace").splitlines():
        for kind in ("request", "queue", "inference"):
            for part in ("sum", "count"):
                if line.startswith(f"pt2kit_{kind}_duration_seconds_{part}{{"):
                    found.setdefault(kind, [0.0, 0.0])[part == "count"] = float(line.rsplit(" ", 1)[1])
    return {k: tuple(v) for k, v in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", default="256,2048,2048,16", help="MLP widths (default 256,2048,2048,16, as serve_bench.py)")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per point (after 0.5 s warm-up)")
    parser.add_argument("--servers", default="serve,ray-1,ray-2")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per server process or replica (default 1)")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--workdir", default="out/serve_bench")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    dims = [int(d) for d in args.dims.split(",")]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    # the build runs in a child process (Inductor's compile workers linger), as in serve_bench.py
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "serve" / "serve_bench.py"), "--step", "build", "--dims", args.dims,
                    "--workdir", str(workdir)], check=True, stdout=subprocess.DEVNULL)
    package = build_package_path(dims, workdir)
    import random

    rng = random.Random(0)
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, dims[0]], "datatype": "FP32",
                                   "data": [rng.uniform(-1, 1) for _ in range(dims[0])]}]}).encode()
    raw = request_bytes("POST", "/v2/models/mlp/infer", body)
    rows = []
    for kind in args.servers.split(","):
        port = free_port()
        proc = start(kind, package, port, args.threads, args.max_batch_size)
        try:
            # the HTTP path alone (a route that runs no model): Ray's proxy and RPC vs uvicorn
            for c in (1, 32):
                row = {"server": kind, "route": "live", **asyncio.run(drive(port, request_bytes("GET", "/v2/health/live"), c, args.seconds))}
                rows.append(row)
                print(f"{kind:7s} c={c:3d}  {row['throughput']:8.1f} req/s  p50 {row['p50_ms']:7.2f} ms  (GET /v2/health/live)", file=sys.stderr)
            for c in map(int, args.concurrency.split(",")):
                before = server_timings(port) if c == 1 else None
                row = {"server": kind, "route": "infer", **asyncio.run(drive(port, raw, c, args.seconds))}
                if before is not None:  # where one request's time goes inside the server (the replica that answers /metrics)
                    after = server_timings(port)
                    row["inside_ms"] = {k: 1000 * (after[k][0] - before.get(k, (0, 0))[0]) / max(1.0, after[k][1] - before.get(k, (0, 0))[1]) for k in after}
                    print(f"{kind:7s} c=  1  inside the server, ms per request: "
                          + ", ".join(f"{k} {v:.2f}" for k, v in row["inside_ms"].items()), file=sys.stderr)
                rows.append(row)
                print(f"{kind:7s} c={c:3d}  {row['throughput']:8.1f} req/s  p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms"
                      f"  errors {row['errors']}", file=sys.stderr)
        finally:
            stop(proc)
    import ray

    result = {**machine(), "ray": ray.__version__, "dims": dims, "threads": args.threads,
              "max_batch_size": args.max_batch_size, "rows": rows}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
