"""The baseline for benchmarks/serve/serve_bench.py: a plain FastAPI endpoint that runs the eager model per request.

The same OIP request and response bodies as `pt2kit serve`, so the load generator sends the same bytes; no checks
beyond what torch does, no batching. Run: `uvicorn benchmarks.serve.serve_plain_app:app` with SERVE_BENCH_DIMS set.
"""

from __future__ import annotations

import json
import os

import torch
from fastapi import FastAPI, Request
from starlette.responses import Response


def mlp(dims: list[int]) -> torch.nn.Module:
    """The benchmark's MLP, seeded, so the baseline and the exported package hold the same weights."""
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1]).eval()


if os.environ.get("SERVE_BENCH_THREADS"):
    torch.set_num_threads(int(os.environ["SERVE_BENCH_THREADS"]))
model = mlp([int(d) for d in os.environ.get("SERVE_BENCH_DIMS", "256,2048,2048,16").split(",")])
app = FastAPI()


@app.get("/v2/health/ready")
def ready():
    return {"ready": True}


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request):
    body = json.loads(await request.body())
    item = body["inputs"][0]
    x = torch.tensor(item["data"], dtype=torch.float32).reshape(item["shape"])
    with torch.inference_mode():
        y = model(x)
    out = {"model_name": name, "outputs": [{"name": "output", "datatype": "FP32", "shape": list(y.shape), "data": y.reshape(-1).tolist()}]}
    return Response(json.dumps(out), media_type="application/json")
