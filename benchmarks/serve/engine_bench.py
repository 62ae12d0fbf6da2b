"""The engine of `pt2kit serve --frontends N` alone: how many requests per second it turns around, without HTTP.

One process runs the `Engine` (`--model linear`: tests/cases/linear_relu.py, 64-byte requests; `--model imagey`:
benchmarks/serve/imagey.py, ResNet-50's 301 KB bf16 image in and little compute, which on this CPU still reads
every byte; `--model strip`: the same input, reading one row of pixels; all exported with a dynamic batch,
`--max-batch-size 64`); `--clients` processes each connect as a front end would (`connect_engine`, their own
shared-memory arena) and keep `--in-flight` requests of one row outstanding through `EngineBackend` for `--seconds`
(as many asyncio tasks, each sending its next request when the last one is answered). The engine's and the front
ends' own cost per request (messages, slot copies and views, batching, replies) is what limits this, not the model.
It prints requests a second, the p50 and p99 of a request's round trip, and the mean rows of a model call.

    .venv/bin/python benchmarks/serve/engine_bench.py --clients 8 --in-flight 32 --seconds 5 --model imagey
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))


def run_engine(artifact: str, socket_path: str, ready, stop, calls) -> None:
    import torch

    from pt2kit.serve.engine import Engine
    from pt2kit.serve.service import load_services

    torch.set_num_threads(1)
    services = load_services([artifact], max_batch_size=64)
    for service in services:
        service.warm_up()
        count_calls(service)
    engine = Engine(services, socket_path)
    engine.start()
    cpu = time.process_time()
    ready.set()
    stop.wait()
    cpu = time.process_time() - cpu  # the engine's CPU seconds (every thread) while the clients ran
    engine.stop()
    calls.put({**engine_calls(services), "cpu_s": cpu})


def count_calls(service) -> None:
    """Count the engine's calls of `service` and their rows (an instance attribute wraps `run`)."""
    service.bench_calls = service.bench_rows = 0
    run = service.run

    def counted(tensors, checked=False):
        service.bench_calls += 1
        service.bench_rows += next(iter(tensors.values())).shape[0]
        return run(tensors, checked)

    service.run = counted


def engine_calls(services) -> dict:
    """The engine's model calls, counted from its lanes' batch threads (the rows of each call it ran)."""
    return {"calls": sum(getattr(s, "bench_calls", 0) for s in services), "rows": sum(getattr(s, "bench_rows", 0) for s in services)}


def run_client(socket_path: str, in_flight: int, seconds: float, model_kind: str, results) -> None:
    import torch

    from pt2kit.serve.engine_client import EngineBackend, connect_engine
    from pt2kit.serve.metrics import ServeMetrics
    from pt2kit.serve.protocol import InferRequest

    torch.set_num_threads(1)
    link = connect_engine(socket_path)
    (model,) = link.models
    backend = EngineBackend(link, ServeMetrics([model.name]))
    if model_kind in ("imagey", "strip"):
        request = InferRequest("", {"pixel_values": torch.zeros(1, 3, 224, 224, dtype=torch.bfloat16)})
    else:
        request = InferRequest("", {"input": torch.randn(1, 16)})

    async def main() -> list[float]:
        await backend.start()
        times, deadline = [], time.perf_counter() + seconds

        async def loop():
            while (start := time.perf_counter()) < deadline:
                await backend.infer(model, request)
                times.append(time.perf_counter() - start)

        await asyncio.gather(*(loop() for _ in range(in_flight)))
        await backend.stop()
        return times

    results.put(asyncio.run(main()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=32, help="requests outstanding per client")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--model", choices=("linear", "imagey", "strip"), default="linear")
    parser.add_argument("--workdir", default="out/engine_bench")
    args = parser.parse_args()
    from serve_support import export

    from pt2kit.serve.engine import socket_dir

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    artifact = workdir / f"{args.model}.pt2"
    if not artifact.exists() and args.model == "linear":
        export("linear_relu", artifact, "input:0=batch[1,64]")
    elif not artifact.exists():
        import pt2kit

        name = "model" if args.model == "imagey" else "strip"
        pt2kit.export_program(pt2kit.load_target(f"{ROOT / 'benchmarks' / 'serve' / 'imagey.py'}:{name}"), artifact,
                              dynamic="pixel_values:0=batch[1,64]")
    directory = socket_dir()
    socket_path = os.path.join(directory, "engine.sock")
    spawn = multiprocessing.get_context("spawn")
    ready, stop, results, calls = spawn.Event(), spawn.Event(), spawn.Queue(), spawn.Queue()
    engine = spawn.Process(target=run_engine, args=(str(artifact), socket_path, ready, stop, calls))
    engine.start()
    ready.wait(120)
    clients = [spawn.Process(target=run_client, args=(socket_path, args.in_flight, args.seconds, args.model, results))
               for _ in range(args.clients)]
    for client in clients:
        client.start()
    times = sorted(t for _ in clients for t in results.get(timeout=args.seconds + 120))
    for client in clients:
        client.join()
    stop.set()
    counted = calls.get(timeout=60)
    engine.join(30)
    shutil.rmtree(directory, ignore_errors=True)
    print(json.dumps({"model": args.model, "clients": args.clients, "in_flight": args.in_flight, "seconds": args.seconds,
                      "requests": len(times), "requests_per_s": round(len(times) / args.seconds),
                      "p50_ms": round(times[len(times) // 2] * 1000, 2), "p99_ms": round(times[int(len(times) * 0.99)] * 1000, 2),
                      "engine_cpu_us_per_request": round(counted["cpu_s"] / len(times) * 1e6, 1), "model_calls": counted["calls"], "rows_per_call": round(counted["rows"] / max(counted["calls"], 1), 1),
                      "cpus": os.cpu_count(), "pt2kit": os.path.dirname(__import__("pt2kit").__file__)}))


if __name__ == "__main__":
    main()
