"""`pt2kit serve` on the GPU machine: a ResNet-50 AOTInductor package in bf16, batched vs unbatched, concurrency 64.

One command builds the package (torchvision's ResNet-50, random weights, dynamic batch 1..64), times the package's
own call, then serves it twice (`--max-batch-size 64`, then 1) and drives each with the load generator of
benchmarks/serve/serve_bench.py, sending batch-1 images as binary tensor data (the OIP extension). Needs LD_PRELOAD (see
/work/shared/GPU.md) and the serve extra.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libstdc++.so.6 python benchmarks/serve/serve_gpu.py --workdir /tmp/gpu
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common
from common import drive, free_port, request_bytes, stop, utc_now, wait_ready  # noqa: E402


def build(workdir: Path) -> Path:
    import pt2kit
    from pt2kit import progress

    progress.set_quiet(True)
    package = workdir / "resnet50.bf16.aoti.pt2"
    target = workdir / "resnet50_target.py"
    target.write_text("import torch, torchvision\ntorch.manual_seed(0)\nmodel = torchvision.models.resnet50().eval()\n"
                      "example_args = (torch.randn(4, 3, 224, 224),)\n")
    start = time.time()
    pt2kit.export_program(pt2kit.load_target(f"{target}:model"), workdir / "resnet50.pt2", dynamic="x:0=batch[1,64]")
    pt2kit.compile_package(str(workdir / "resnet50.pt2"), package, device="cuda", dtype="bf16")
    print(f"built {package} in {time.time() - start:.0f} s", file=sys.stderr)
    return package


def serve_and_drive(package: Path, max_batch: int, concurrency: list[int], seconds: float) -> list[dict]:
    import httpx
    import numpy as np

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pt2kit", "serve", str(package), "--name", "resnet50", "--port", str(port),
                             "--max-batch-size", str(max_batch), "--device", "cuda", "-q"], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, "pt2kit serve", port, timeout=300)
        meta = httpx.get(f"{url}/v2/models/resnet50").json()["inputs"][0]
        itemsize = {"BF16": 2, "FP16": 2, "FP32": 4}[meta["datatype"]]
        raw = np.random.default_rng(0).integers(0, 255, 3 * 224 * 224 * itemsize, dtype=np.uint8).tobytes()
        if meta["datatype"] == "BF16":  # finite bf16 values: clear each element's exponent's top bit
            arr = np.frombuffer(raw, dtype=np.uint16) & np.uint16(0x3FFF)
            raw = arr.tobytes()
        head = json.dumps({"inputs": [{"name": meta["name"], "shape": [1, 3, 224, 224], "datatype": meta["datatype"],
                                       "parameters": {"binary_data_size": len(raw)}}],
                           "parameters": {"binary_data_output": True}}).encode()
        body = request_bytes("POST", "/v2/models/resnet50/infer", head + raw, {"Inference-Header-Content-Length": str(len(head))})
        rows = []
        for c in concurrency:
            row = {"server": f"pt2kit max-batch {max_batch}", **asyncio.run(drive(port, body, c, seconds))}
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
        return rows
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="/tmp/serve_gpu")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    import torch

    package = build(workdir)
    own = json.loads(subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}]; "
                                     f"import serve_gpu_scale, json; print(json.dumps(serve_gpu_scale.own_call(__import__('pathlib').Path({str(package)!r}))))"],
                                    capture_output=True, text=True, check=True).stdout)
    rows = serve_and_drive(package, 64, [1, 64], args.seconds) + serve_and_drive(package, 1, [64], args.seconds)
    print(json.dumps({"date": utc_now(), "gpu": torch.cuda.get_device_name(0),
                      "torch": torch.__version__, "cpus": os.cpu_count(), "own_call": own, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
