"""One client's latency, two servers interleaved: is a change to the 1-client path a gain, on a machine whose load drifts?

Starts `pt2kit serve ARTIFACT` twice (`--threads 1`, the same extra flags), one with `--baseline-src` (an older
pt2kit's `src` first on the path) and one with this checkout, then sends batch-1 binary requests of zeros (the
model's first input at batch 1; ResNet-50's 301 KB for benchmarks/serve/imagey.py) from this process over one
keep-alive connection each: `--rounds` rounds of `--requests` requests to one server, then the other, so a change in
the machine's load falls on both. Prints the p50 and p90 of each server over all rounds and the model's own call
(p50, `check=False`, one thread).

    .venv/bin/python benchmarks/serve/latency_ab.py out/engine_bench/strip.pt2 --baseline-src /tmp/old/src --frontends 2
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import free_port, percentile  # noqa: E402


def start(artifact: str, port: int, flags: list[str], source: str | None) -> subprocess.Popen:
    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, "-m", "pt2kit", "serve", artifact, "--name", "model", "--port", str(port),
                             "--threads", "1", "-q", *flags], env=env, stderr=subprocess.DEVNULL)


def wait_ready(port: int) -> None:
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/v2/health/ready")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the server on port {port} did not become ready")


def binary_request(artifact: str) -> tuple[bytes, dict]:
    import torch

    import pt2kit
    from pt2kit.serve.service import ModelService

    service = ModelService("model", pt2kit.load(artifact, threads=1), max_batch_size=64)
    inputs = service.example_inputs(1)
    names = {torch.bfloat16: "BF16", torch.float32: "FP32", torch.float16: "FP16", torch.int64: "INT64"}
    head, raw = {"inputs": [], "outputs": [{"name": o.name, "parameters": {"binary_data": True}} for o in service.manifest.outputs]}, b""
    for name, tensor in inputs.items():
        data = tensor.contiguous().view(torch.uint8).numpy().tobytes()
        head["inputs"].append({"name": name, "shape": list(tensor.shape), "datatype": names[tensor.dtype],
                               "parameters": {"binary_data_size": len(data)}})
        raw += data
    times = []
    for i in range(300):
        t = time.perf_counter()
        service.run(inputs, checked=True)
        if i >= 50:
            times.append(time.perf_counter() - t)
    encoded = json.dumps(head).encode()
    return encoded + raw, {"Inference-Header-Content-Length": str(len(encoded)), "own_call_ms": percentile(times, 50) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact")
    parser.add_argument("--baseline-src", required=True)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=300)
    args, flags = parser.parse_known_args()
    body, headers = binary_request(args.artifact)
    own_call_ms = headers.pop("own_call_ms")
    ports = {"baseline": free_port(), "this": free_port()}
    servers = {name: start(args.artifact, port, flags, args.baseline_src if name == "baseline" else None) for name, port in ports.items()}
    try:
        for port in ports.values():
            wait_ready(port)
        time.sleep(2)
        connections = {name: http.client.HTTPConnection("127.0.0.1", port) for name, port in ports.items()}
        times: dict[str, list[float]] = {name: [] for name in ports}
        for _ in range(args.rounds):
            for name, connection in connections.items():
                for i in range(args.requests + 20):
                    t = time.perf_counter()
                    connection.request("POST", "/v2/models/model/infer", body=body, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    if response.status != 200:
                        raise SystemExit(f"{name}: HTTP {response.status}")
                    if i >= 20:  # the first requests of a round warm the connection's path up again
                        times[name].append(time.perf_counter() - t)
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(60)
    result = {"own_call_ms": round(own_call_ms, 3), "flags": flags, "requests_each": len(times["this"])}
    for name, values in times.items():
        result[name] = {"p50_ms": round(percentile(values, 50) * 1000, 3), "p90_ms": round(percentile(values, 90) * 1000, 3),
                        "over_own_call_ms": round(percentile(values, 50) * 1000 - own_call_ms, 3)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
