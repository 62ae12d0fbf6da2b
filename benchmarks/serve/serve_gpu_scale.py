"""`pt2kit serve` against the GPU, side by side in one run: one server process, `--workers N` (N processes, a model
instance each) and `--frontends N` (N front ends, one engine process), HTTP and gRPC, measured by NVIDIA's
perf_analyzer (batch-1 ResNet-50 bf16 images as binary data).

One command builds the package (benchmarks/gpu/gpu_models.py:resnet50, transformers' ResNet-50 with random weights, no
torchvision; dynamic batch 1..64; bf16), times the package's own call at batch 1 and 64 (and, at batch 1, the pieces
of the server's path: the call without the input check, with the copy in and out, `ModelService.run_batch`), then
serves it with `--max-batch-size 64 --threads 1 --grpc-port` and each plan entry's design, and drives it with
perf_analyzer at each concurrency, over HTTP and gRPC. A plan entry is `wN:C,...` (`--workers N`), `fN:C,...`
(`--frontends N`) or `N:C,...` (= `wN`), and `@base` at the end serves it with `--baseline-src` (an older pt2kit's
`src`), to compare two versions in one run. Each row is written to OUT/rows.jsonl as it comes, the summary to
OUT/result.json.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libstdc++.so.6 python benchmarks/serve/serve_gpu_scale.py --workdir /tmp/sg \\
        --out $OUT --perf-analyzer pa/perf_analyzer --plan w8:1,256 f8:1,256 f12:256

perf_analyzer ships inside tritonclient 2.50.0's wheel (`make perf-analyzer` unpacks it); it needs libb64.so.0d and
libcudart.so.12 on LD_LIBRARY_PATH (the folder of `--perf-analyzer` is added).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import free_port, median  # noqa: E402


def build(workdir: Path) -> Path:
    import pt2kit
    from pt2kit import progress

    progress.set_quiet(True)
    package = workdir / "resnet50.bf16.aoti.pt2"
    if package.exists():  # an earlier run on this machine built it: one package for every server and run
        print(f"reusing {package}", file=sys.stderr, flush=True)
        return package
    start = time.time()
    pt2kit.export_program(pt2kit.load_target(f"{HERE.parent / 'gpu' / 'gpu_models.py'}:resnet50"), workdir / "resnet50.pt2",
                          dynamic="pixel_values:0=batch[1,64]")
    pt2kit.compile_package(str(workdir / "resnet50.pt2"), package, device="cuda", dtype="bf16")
    print(f"built {package} in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    return package


def _p50_ms(fn, n: int = 50) -> float:
    import torch

    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return median(times) * 1000


def own_call(package: Path) -> dict:
    """The package's own call: `pt2kit.load(package, threads=1)(x)` with `x` already on the GPU, CUDA-synchronised,
    p50 of 50, at batch 1 and 64 (the servers load it with the same options: `--threads 1`). At batch 1 also the
    pieces of a server's path, to see where the time between the call and a served request goes."""
    import torch

    import pt2kit
    from pt2kit.serve.protocol import InferRequest
    from pt2kit.serve.service import ModelService

    model = pt2kit.load(package, threads=1)
    name = model.manifest.inputs[0].name
    dtype = getattr(torch, model.manifest.inputs[0].dtype)
    result = {}
    for batch in (1, 64):
        x = torch.randn(batch, 3, 224, 224, device="cuda").to(dtype)
        result[f"batch{batch}_ms"] = _p50_ms(lambda: model(x))
    result["images_per_s_at_64"] = 64 / result["batch64_ms"] * 1000
    x = torch.randn(1, 3, 224, 224, device="cuda").to(dtype)
    host = x.cpu().pin_memory()
    pageable = x.cpu()
    with torch.inference_mode():
        result["batch1_no_input_check_ms"] = _p50_ms(lambda: model.call_named([], {name: x}, check=False))
        result["batch1_pinned_in_call_out_ms"] = _p50_ms(
            lambda: model.call_named([], {name: host.to("cuda", non_blocking=True)}, check=False).to("cpu", non_blocking=True))
        result["batch1_pageable_in_call_out_ms"] = _p50_ms(
            lambda: model.call_named([], {name: pageable.to("cuda")}, check=False).cpu())
    service = ModelService("model", model, device="cuda", max_batch_size=64)
    result["batch1_run_batch_ms"] = _p50_ms(lambda: service.run_batch([InferRequest("", {name: pageable})]))
    return result


def own_call_cpu(artifact: Path) -> dict:
    """The artifact's own call on the CPU (`--device cpu`): `pt2kit.load(artifact, threads=1)` on zeros, p50 of 200,
    at batch 1 and 64, the inputs checked as a server's loader does not (`check=False`)."""
    import torch

    import pt2kit
    from pt2kit.serve.service import ModelService

    torch.set_num_threads(1)
    service = ModelService("model", pt2kit.load(artifact, threads=1), max_batch_size=64)
    result = {}
    for batch in (1, 64):
        inputs = service.example_inputs(batch)
        times = []
        for i in range(220):
            t = time.perf_counter()
            service.run(inputs, checked=True)
            if i >= 20:
                times.append(time.perf_counter() - t)
        result[f"batch{batch}_ms"] = median(times) * 1000
    result["images_per_s_at_64"] = 64 / result["batch64_ms"] * 1000
    return result


def serve(package: Path, design: str, workers: int, port: int, grpc_port: int, device: str = "cuda", max_batch: int = 64,
          source: str | None = None) -> subprocess.Popen:
    import httpx

    env = dict(os.environ)
    if source:  # an older pt2kit's `src` folder, first on the path: the baseline served in the same run
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))

    flag = "--frontends" if design == "f" else "--workers"
    proc = subprocess.Popen([sys.executable, "-m", "pt2kit", "serve", str(package), "--name", "model", "--device", device,
                             "--port", str(port), "--grpc-port", str(grpc_port), "--max-batch-size", str(max_batch),
                             flag, str(workers), "--threads", "1"], stderr=subprocess.PIPE, text=True, env=env)  # its log ends the row
    deadline, streak = time.time() + 240, 0
    while time.time() < deadline and streak < 4 * workers:  # fresh connections land on any worker: all must say ready
        if proc.poll() is not None:
            raise SystemExit(proc.stderr.read()[-3000:])
        try:
            streak = streak + 1 if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200 else 0
        except httpx.HTTPError:
            streak = 0
        time.sleep(0.25 if streak else 0.5)
    time.sleep(3 if workers > 1 and design == "w" else 1 if workers > 1 else 0)  # workers warm up before they listen
    return proc


def stop(proc: subprocess.Popen) -> int:
    """SIGTERM, the exit status, and the server's log printed (its start-up lines say e.g. whether the engine's copies
    are pinned)."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, log = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, log = proc.communicate()
    print("server log: " + " | ".join(line for line in log.splitlines()[-40:] if line.strip()), file=sys.stderr, flush=True)
    return proc.returncode


def perf_analyzer(binary: str, url: str, protocol: str, concurrency: int, out: Path) -> dict:
    csv_path = out / f"pa_{protocol}_{concurrency}_{int(time.time() * 1000) % 100000}.csv"
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(filter(None, [str(Path(binary).resolve().parent), os.environ.get("LD_LIBRARY_PATH")])))
    env.pop("LD_PRELOAD", None)
    command = [binary, "-m", "model", "-x", "1", "-u", url, "-i", protocol, "-b", "1", "--concurrency-range", str(concurrency),
               "--input-data", "zero", "--measurement-interval", "2000", "--max-trials", "5", "--stability-percentage", "999",
               "-f", str(csv_path)]
    row = {"protocol": protocol, "concurrency": concurrency}
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=90, env=env)
    except subprocess.TimeoutExpired:
        return {**row, "rc": None, "error": "perf_analyzer ran past 90 s"}
    row["rc"] = run.returncode
    if run.returncode != 0 or not csv_path.exists():
        row["error"] = (run.stdout[-800:] + run.stderr[-800:]).strip()
        return row
    with open(csv_path) as f:
        record = next(csv.DictReader(f))
    row["throughput"] = float(record["Inferences/Second"])
    for key, name in (("p50 latency", "p50_ms"), ("p99 latency", "p99_ms")):
        row[name] = float(record[key]) / 1000
    row["server_queue_ms"] = float(record.get("Server Queue", 0)) / 1000
    row["server_compute_ms"] = sum(float(record.get(k, 0)) for k in ("Server Compute Input", "Server Compute Infer", "Server Compute Output")) / 1000
    csv_path.unlink()
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="/tmp/serve_gpu_scale")
    parser.add_argument("--out", default=".")
    parser.add_argument("--perf-analyzer", required=True)
    parser.add_argument("--plan", nargs="+", default=["w8:1,256", "f8:1,256"],
                        help="[w|f]N:CONCURRENCY,... per server: `--workers N` (w, the default) or `--frontends N` (f)")
    parser.add_argument("--protocols", default="http,grpc")
    parser.add_argument("--artifact", help="serve this artifact instead of building ResNet-50 (e.g. a CPU package)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--baseline-src", help="the `src` folder of the pt2kit to compare with: plan entries ending in "
                        "`@base` (e.g. `f8:1,256@base`) serve with it, the others with this checkout's")
    args = parser.parse_args()
    workdir, out = Path(args.workdir), Path(args.out)
    workdir.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    package = Path(args.artifact) if args.artifact else build(workdir)
    timer = "own_call_cpu" if args.device == "cpu" else "own_call" if not args.artifact else None
    own = {} if timer is None else json.loads(subprocess.run(
        [sys.executable, "-c", f"import sys, json, pathlib; sys.path.insert(0, {str(HERE)!r}); "
         f"import serve_gpu_scale as s; print(json.dumps(s.{timer}(pathlib.Path({str(package)!r}))))"],
        capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    print(json.dumps({"own_call": own}), file=sys.stderr, flush=True)
    rows = []
    for step in args.plan:
        step, _, variant = step.partition("@")
        if variant and (variant != "base" or not args.baseline_src):
            raise SystemExit(f"plan entry `{step}@{variant}`: only `@base`, with --baseline-src DIR")
        processes, concurrencies = step.split(":")
        design = processes[0] if processes[0] in "wf" else "w"
        workers = int(processes.lstrip("wf"))
        port, grpc_port = free_port(), free_port()
        started = time.time()
        proc = serve(package, design, workers, port, grpc_port, args.device, args.max_batch_size,
                     args.baseline_src if variant else None)
        print(f"{processes} ready in {time.time() - started:.0f} s", file=sys.stderr, flush=True)
        try:
            for protocol in args.protocols.split(","):
                for c in map(int, concurrencies.split(",")):
                    url = f"127.0.0.1:{port if protocol == 'http' else grpc_port}"
                    measured = perf_analyzer(args.perf_analyzer, url, protocol, c, out)
                    if "error" in measured:  # once more: a process that has just started listening may not have answered yet
                        measured = {**perf_analyzer(args.perf_analyzer, url, protocol, c, out), "first_try": measured["error"][-300:]}
                    row = {"design": "frontends" if design == "f" else "workers", "processes": workers, "max_batch": args.max_batch_size,
                           "code": "baseline" if variant else "this", **measured}
                    if "throughput" in row and own:
                        row["share_of_package"] = row["throughput"] / own["images_per_s_at_64"]
                        row["over_own_call_ms"] = row["p50_ms"] - own["batch1_ms"]
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    with open(out / "rows.jsonl", "a") as f:
                        f.write(json.dumps(row) + "\n")
        finally:
            row_rc = stop(proc)
            print(f"server exit status {row_rc}", file=sys.stderr, flush=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "torch": torch.__version__, "cpus": os.cpu_count(), "own_call": own, "rows": rows}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
