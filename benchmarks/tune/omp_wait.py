"""Why a 2-thread package can run slower than its 1-thread self on a shared 2-core machine (issue 25).

    python benchmarks/tune/omp_wait.py --rounds 4 --out omp_wait.log

Builds the MLP of benchmarks/tune/quantize.py (1024-4096 x3, batch 64) as the `--quantize int8-dynamic` package
and the float32 `cpu-freeze` package, both for 2 threads, and an ONNX Runtime `quantize_dynamic` int8 model as the
control (its thread pool is not OpenMP). Then, round after round, it starts one fresh process per OpenMP wait
setting (libgomp reads them once, when it loads, so each needs its own process) and times every model there at 2
threads (p50 of 40 calls), with the cores that other processes kept busy meanwhile. The settings:
  - `default`: libgomp spins a while (GOMP_SPINCOUNT 300000) at each barrier before it sleeps;
  - `OMP_WAIT_POLICY=PASSIVE`: a waiting thread sleeps at once;
  - `GOMP_SPINCOUNT=10000`: a short spin, then sleep.
Rounds interleave the settings, so the machine's load touches each alike; its load is logged with each row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {"default": {}, "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"}, "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"}}


def child(paths: list[str]) -> None:
    """Time each model at 2 threads in this process; print one JSON line."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch

    import pt2kit
    from quantize import BusyCores

    torch.set_num_threads(2)
    x = torch.randn(64, 1024)
    calls = {}
    for path in paths:
        if path.endswith(".onnx"):
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            calls[Path(path).name] = (lambda s, feed: lambda: s.run(None, feed))(session, {"x": x.numpy()})
        else:
            calls[Path(path).name] = (lambda m: lambda: m(x))(pt2kit.load(path, threads=2))
    busy, out = BusyCores(), {}
    with torch.no_grad():
        for name, call in calls.items():
            for _ in range(5):
                call()
            times = []
            for _ in range(40):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            out[name] = statistics.median(times) * 1e3
    print(json.dumps({"p50": out, "others": busy.others(), "load": os.getloadavg()[0]}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", help="append the log to this file")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import logging

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import pt2kit
    from pt2kit.compile import compile_package
    from quantize import mlp

    logging.getLogger("torchao").setLevel(logging.ERROR)
    sink = open(args.out, "a") if args.out else None

    def log(text: str) -> None:
        print(text, flush=True)
        if sink:
            sink.write(text + "\n")
            sink.flush()

    from pt2kit.benchmark.harness import machine_info

    log(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch {torch.__version__}, {machine_info('cpu')}")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        target = mlp()
        program = tmp / "mlp.pt2"
        pt2kit.export_program(target, program, check_specialization=False)
        torch.onnx.export(target.module, target.args, str(tmp / "mlp.onnx"), dynamo=False, input_names=["x"])
        quantize_dynamic(str(tmp / "mlp.onnx"), str(tmp / "ort-int8.onnx"), weight_type=QuantType.QInt8)
        paths = [str(tmp / "int8-dynamic.aoti.pt2"), str(tmp / "fp32-cpu-freeze.aoti.pt2"), str(tmp / "ort-int8.onnx")]
        for path, quantize in zip(paths, ("int8-dynamic", None)):
            compile_package(program, path, preset="cpu-freeze", quantize=quantize, inductor_configs={"cpp.threads": 2})
        names = [Path(p).name for p in paths]
        rows = ["| round | OpenMP wait | load avg | cores busy with others | " + " | ".join(f"{n} p50 ms" for n in names) + " |",
                "| ---: | --- | ---: | ---: | " + " | ".join("---:" for _ in names) + " |"]
        for r in range(args.rounds):
            for label, env in SETTINGS.items():
                done = subprocess.run([sys.executable, __file__, "--child", *paths], env={**os.environ, **env},
                                      capture_output=True, text=True, check=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append(f"| {r + 1} | {label} | {result['load']:.1f} | {result['others']:.2f} | "
                            + " | ".join(f"{result['p50'][n]:.2f}" for n in names) + " |")
                log(rows[-1])
    log("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
