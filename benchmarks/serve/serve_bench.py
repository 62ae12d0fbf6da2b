"""Throughput and latency of `pt2kit serve` side by side with its unbatched self and a plain FastAPI endpoint.

One run builds a small MLP's AOTInductor package (cached), then starts three servers in turn, each in its own
process on 127.0.0.1, and drives each from this process (the load generator: asyncio with keep-alive connections
and pre-encoded requests, so the client spends as little of the shared CPU as it can) at each concurrency:

  pt2kit-batched   `pt2kit serve MLP.aoti.pt2 --max-batch-size 64`
  pt2kit-batch1    `pt2kit serve MLP.aoti.pt2 --max-batch-size 1`
  plain-fastapi    benchmarks/serve/serve_plain_app.py: the eager model per request

It also times the model's own call (the package through `pt2kit.load`, batch 1) and an HTTP round trip that runs
no model (`GET /v2/health/live`), so the latency at concurrency 1 can be split into model, HTTP and pt2kit.

    .venv/bin/python benchmarks/serve/serve_bench.py --seconds 4 --json out/serve_bench.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "serve"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import common  # noqa: E402
from common import drive, free_port, machine, median, request_bytes, stop  # noqa: E402


def build_package_path(dims: list[int], workdir: Path) -> Path:
    return workdir / f"mlp_{'x'.join(map(str, dims))}.aoti.pt2"


def build_package(dims: list[int], workdir: Path) -> Path:
    import pt2kit
    from pt2kit import progress

    progress.set_quiet(True)
    package = build_package_path(dims, workdir)
    if package.exists():
        return package
    program = workdir / "mlp.pt2"
    target_file = workdir / "mlp_target.py"
    target_file.write_text(f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks' / 'serve')!r})\nimport torch\n"
                           f"from serve_plain_app import mlp\nmodel = mlp({dims})\nexample_args = (torch.randn(4, {dims[0]}),)\n")
    target = pt2kit.load_target(f"{target_file}:model")
    pt2kit.export_program(target, program, dynamic="input:0=batch[1,256]")
    pt2kit.compile_package(str(program), package, device="cpu")
    return package


def own_call(package: Path, features: int, threads: int, iters: int = 300) -> dict:
    """The model's own call: p50 of the package at batch 1 through `pt2kit.load` (with its input check), in ms."""
    import torch

    import pt2kit

    torch.set_num_threads(threads)
    model = pt2kit.load(package)
    x = torch.randn(1, features)
    with torch.inference_mode():
        for _ in range(20):
            model(x)
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return {"p50_ms": median(times) * 1000}


def start_server(kind: str, package: Path, dims: list[int], port: int, threads: int) -> subprocess.Popen:
    env = dict(os.environ, SERVE_BENCH_DIMS=",".join(map(str, dims)), SERVE_BENCH_THREADS=str(threads), PYTHONPATH=str(ROOT / "benchmarks" / "serve"))
    if kind == "plain-fastapi":
        cmd = [sys.executable, "-m", "uvicorn", "serve_plain_app:app", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    else:
        batch = "64" if kind == "pt2kit-batched" else "1"
        cmd = [sys.executable, "-m", "pt2kit", "serve", str(package), "--name", "mlp", "--port", str(port), "--max-batch-size", batch, "--threads", str(threads), "-q"]
    return common.start_server(cmd, kind, port, timeout=180, env=env, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", default="256,2048,2048,16", help="MLP widths (default 256,2048,2048,16)")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per point (after 0.5 s warm-up)")
    parser.add_argument("--servers", default="pt2kit-batched,pt2kit-batch1,plain-fastapi")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every server and the own-call timing (default 1)")
    parser.add_argument("--workdir", default="out/serve_bench")
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--step", choices=["build", "own-call"], help=argparse.SUPPRESS)  # run in a child process
    args = parser.parse_args()
    dims = [int(d) for d in args.dims.split(",")]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if args.step == "build":
        print(build_package(dims, workdir))
        return
    package = build_package_path(dims, workdir)
    if args.step == "own-call":
        print(json.dumps(own_call(package, dims[0], args.threads)))
        return
    # the build (Inductor's compile workers linger) and the own-call timing run in child processes, so neither
    # leaves threads in this one, the load generator
    subprocess.run([sys.executable, __file__, "--step", "build", "--dims", args.dims, "--workdir", str(workdir)], check=True)
    model_call = json.loads(subprocess.run([sys.executable, __file__, "--step", "own-call", "--dims", args.dims, "--workdir",
                                            str(workdir), "--threads", str(args.threads)], check=True, capture_output=True, text=True).stdout)
    import torch

    body = json.dumps({"inputs": [{"name": "input", "shape": [1, dims[0]], "datatype": "FP32",
                                   "data": torch.randn(dims[0]).tolist()}]}).encode()
    raw = request_bytes("POST", "/v2/models/mlp/infer", body)
    rows, http_floor = [], None
    for kind in args.servers.split(","):
        port = free_port()
        proc = start_server(kind, package, dims, port, args.threads)
        try:
            if kind == "pt2kit-batched":
                http_floor = asyncio.run(drive(port, request_bytes("GET", "/v2/health/live"), 1, args.seconds))
            for c in map(int, args.concurrency.split(",")):
                row = {"server": kind, **asyncio.run(drive(port, raw, c, args.seconds))}
                rows.append(row)
                print(f"{kind:15s} c={c:3d}  {row['throughput']:8.1f} req/s  p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms"
                      f"  errors {row['errors']}", file=sys.stderr)
        finally:
            stop(proc)
    result = {**machine(), "dims": dims, "threads": args.threads, "model_call_ms": model_call["p50_ms"],
              "http_floor_p50_ms": http_floor["p50_ms"] if http_floor else None, "rows": rows}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
