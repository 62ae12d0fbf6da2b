"""The engine of `pt2kit serve --frontends N` alone: how many requests per second it turns around, without HTTP.

One process runs the `Engine` (tests/cases/linear_relu.py exported with a dynamic batch, `--max-batch-size 64`);
`--clients` processes each connect as a front end would (`connect_engine`, their own shared-memory arena) and keep
`--in-flight` requests of one row outstanding through `EngineBackend` for `--seconds`. The engine's own cost per
request (messages, slot views, batching, replies) is what limits this, not the model: a batch of 64 rows of this
model takes microseconds.

    .venv/bin/python benchmarks/serve/engine_bench.py --clients 2 --in-flight 32 --seconds 5
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


def run_engine(artifact: str, socket_path: str, ready, stop) -> None:
    import torch

    from pt2kit.serve.engine import Engine
    from pt2kit.serve.service import load_services

    torch.set_num_threads(1)
    services = load_services([artifact], max_batch_size=64)
    for service in services:
        service.warm_up()
    engine = Engine(services, socket_path)
    engine.start()
    ready.set()
    stop.wait()
    engine.stop()


def run_client(socket_path: str, in_flight: int, seconds: float, results) -> None:
    import torch

    from pt2kit.serve.engine_client import EngineBackend, connect_engine
    from pt2kit.serve.metrics import ServeMetrics
    from pt2kit.serve.protocol import InferRequest

    torch.set_num_threads(1)
    link = connect_engine(socket_path)
    (model,) = link.models
    backend = EngineBackend(link, ServeMetrics([model.name]))
    request = InferRequest("", {"input": torch.randn(1, 16)})

    async def main() -> int:
        await backend.start()
        done, deadline = 0, time.perf_counter() + seconds

        async def loop():
            nonlocal done
            while time.perf_counter() < deadline:
                await backend.infer(model, request)
                done += 1

        await asyncio.gather(*(loop() for _ in range(in_flight)))
        await backend.stop()
        return done

    results.put(asyncio.run(main()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=32, help="requests outstanding per client")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workdir", default="out/engine_bench")
    args = parser.parse_args()
    from serve_support import export

    from pt2kit.serve.engine import socket_dir

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    artifact = workdir / "linear.pt2"
    if not artifact.exists():
        export("linear_relu", artifact, "input:0=batch[1,64]")
    directory = socket_dir()
    socket_path = os.path.join(directory, "engine.sock")
    spawn = multiprocessing.get_context("spawn")
    ready, stop, results = spawn.Event(), spawn.Event(), spawn.Queue()
    engine = spawn.Process(target=run_engine, args=(str(artifact), socket_path, ready, stop))
    engine.start()
    ready.wait(120)
    clients = [spawn.Process(target=run_client, args=(socket_path, args.in_flight, args.seconds, results)) for _ in range(args.clients)]
    for client in clients:
        client.start()
    counts = [results.get(timeout=args.seconds + 120) for _ in clients]
    for client in clients:
        client.join()
    stop.set()
    engine.join(30)
    shutil.rmtree(directory, ignore_errors=True)
    print(json.dumps({"clients": args.clients, "in_flight": args.in_flight, "seconds": args.seconds, "requests": sum(counts),
                      "requests_per_s": round(sum(counts) / args.seconds), "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
