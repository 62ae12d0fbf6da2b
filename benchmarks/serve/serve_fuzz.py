"""Fuzz the infer route of a real `pt2kit serve` process with 10,000+ property-based cases, over HTTP and gRPC;
count the answers.

The strategies are tests/serve_fuzz_strategies.py (requests shaped by the route's OpenAPI schema and the models'
metadata, then bent; over gRPC the same bent entries as `ModelInferRequest` messages, raw or typed contents, plus
bytes that are no protobuf message). An HTTP case fails if the answer is a 5xx, a connection the server dropped, or
an error body that is not one line of `{"error": ...}` JSON; a gRPC case if its status is not OK, INVALID_ARGUMENT,
NOT_FOUND or RESOURCE_EXHAUSTED, or its message is not one line. At the end the server must still answer, and exit
0 on SIGTERM. `--frontends N` fuzzes the engine design (`pt2kit serve --frontends N`).

    .venv/bin/python benchmarks/serve/serve_fuzz.py --cases 10000 --grpc-cases 5000
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10000, help="cases per model (default 10000)")
    parser.add_argument("--workdir", default="out/serve_fuzz")
    parser.add_argument("--grpc-cases", type=int, default=5000, help="gRPC cases per model (default 5000; 0: HTTP only)")
    parser.add_argument("--frontends", type=int, default=0, help="serve with `--frontends N` (default 0: one process)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import httpx
    from hypothesis import HealthCheck, given, seed, settings

    from serve_fuzz_strategies import infer_body
    from common import free_port, wait_ready
    from serve_support import export

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    paths = [export("linear_relu", workdir / "linear.pt2", "input:0=batch[1,64]"),
             export("two_inputs_dict_out", workdir / "pair.pt2", "x:0=batch[1,64],x:1=seq[2,16],mask:0=batch,mask:1=seq")]
    port, grpc_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pt2kit", "serve", *map(str, paths), "--port", str(port), "--max-body-mb", "1",
                             "--grpc-port", str(grpc_port), "--frontends", str(args.frontends), "-q"], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_ready(proc, "pt2kit serve", port, timeout=180)
    import psutil

    server = psutil.Process(proc.pid)  # with --frontends: the engine, which holds the models
    rss: dict[str, int] = {}
    codes: Counter = Counter()
    failures: list[str] = []
    start = time.time()
    with httpx.Client(base_url=url, timeout=30) as client:
        for model in ("linear", "pair"):
            meta = client.get(f"/v2/models/{model}").json()

            @seed(args.seed)
            @settings(max_examples=args.cases, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(infer_body(meta, [o["name"] for o in meta["outputs"]]))
            def case(body_headers):
                body, headers = body_headers
                try:
                    response = client.post(f"/v2/models/{model}/infer", content=body, headers=headers)
                except httpx.HTTPError as exc:
                    codes["dropped"] += 1
                    failures.append(f"{model}: {type(exc).__name__} for {body[:200]!r} {headers}")
                    return
                codes[response.status_code] += 1
                if sum(codes.values()) == 1000:  # past warm-up: caches and the allocator have settled
                    rss["after_1000"] = server.memory_info().rss
                ok = response.status_code < 500
                if ok and response.status_code != 200:
                    try:
                        ok = response.text.count("\n") == 1 and list(json.loads(response.text)) == ["error"]
                    except ValueError:
                        ok = False
                if not ok:
                    failures.append(f"{model}: {response.status_code} {response.text[:200]} for {body[:200]!r} {headers}")

            case()
            if args.grpc_cases:
                grpc_cases(f"127.0.0.1:{grpc_port}", model, meta, args, codes, failures)
        alive = client.get("/v2/health/live").status_code == 200
        rss["end"] = server.memory_info().rss
    proc.send_signal(signal.SIGTERM)
    exit_code = proc.wait(timeout=60)
    total = sum(codes.values())
    result = {"cases": total, "seconds": round(time.time() - start, 1), "answers": {str(k): v for k, v in sorted(codes.items(), key=str)},
              "failures": len(failures), "server_errors_5xx": sum(v for k, v in codes.items() if isinstance(k, int) and k >= 500),
              "grpc_internal_or_unknown": sum(v for k, v in codes.items() if k in ("grpc:INTERNAL", "grpc:UNKNOWN")),
              "dropped": codes.get("dropped", 0), "rss_mib_after_1000": round(rss.get("after_1000", 0) / 2**20, 1),
              "rss_mib_end": round(rss["end"] / 2**20, 1), "alive_after": alive, "exit_code_on_sigterm": exit_code,
              "first_failures": failures[:5]}
    print(json.dumps(result, indent=2))
    sys.exit(0 if not failures and alive and exit_code == 0 else 1)


GRPC_CLIENT_CODES = ("INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED")


def grpc_cases(target: str, model: str, meta: dict, args, codes, failures: list[str]) -> None:
    """`args.grpc_cases` bent `ModelInferRequest`s for `model`, then 100 bodies that are no protobuf message."""
    import grpc
    from hypothesis import HealthCheck, given, seed, settings
    from tritonclient.grpc import service_pb2_grpc

    from serve_fuzz_strategies import grpc_infer_request

    with grpc.insecure_channel(target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

        def record(call, what) -> None:
            try:
                call()
                codes["grpc:OK"] += 1
            except grpc.RpcError as exc:
                name, details = exc.code().name, exc.details() or ""
                codes[f"grpc:{name}"] += 1
                if name not in GRPC_CLIENT_CODES or not details or "\n" in details:
                    failures.append(f"{model} gRPC: {name} {details[:200]!r} for {what}")

        @seed(args.seed)
        @settings(max_examples=args.grpc_cases, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(grpc_infer_request(model, meta, [o["name"] for o in meta["outputs"]]))
        def case(message):
            record(lambda: stub.ModelInfer(message, timeout=30), str(message)[:200])

        case()
        garbage = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        for i in range(100):
            body = bytes([0xFF, 0xFF, 0xFF, 0x0F]) + bytes(range(i % 256)) + b" not a message"
            record(lambda: garbage(body, timeout=30), f"{len(body)} raw bytes")


if __name__ == "__main__":
    main()
