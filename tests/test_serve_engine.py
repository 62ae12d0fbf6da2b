"""`pt2kit serve --frontends N`: front ends hand checked tensors to one engine process through shared memory.

In-process (the engine and one front end in this process, a real uvicorn and gRPC server on 127.0.0.1): answers match
the model over HTTP (JSON and binary) and gRPC, requests batch, a request too large for a slot travels inline, a model
that raises gets a 500 and the engine goes on, a model whose warm-up failed is not ready. As processes: two front ends
share the port, SIGTERM drains a request in flight and exits 0; `--frontends` with `--workers` is a usage error."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import threading
import time

import httpx
import psutil
import pytest
import torch

import pt2kit
from conftest import check_one_line_error  # noqa: E402
from serve_support import ThreadServer, export, free_port, subprocess_server, tensor_input  # noqa: E402

from pt2kit.serve import ModelService, load_services
from pt2kit.serve.engine import Engine, socket_dir
from pt2kit.serve.engine_client import frontend_app


class RaisingService(ModelService):
    """A real model that raises when the first value of its input is 13."""

    def run(self, tensors, checked=False):
        if float(tensors["input"].reshape(-1)[0]) == 13:
            raise RuntimeError("boom: the model hit a bad value")
        return super().run(tensors, checked)


class ColdService(ModelService):
    def warm_up(self):
        raise RuntimeError("CUDA out of memory (simulated)")


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    return export("linear_relu", tmp_path_factory.mktemp("serve-engine") / "linear.pt2", "input:0=batch[1,64]")


@contextlib.contextmanager
def engine_server(services, slot_bytes=None, grpc_port=None, max_queue_delay_ms=0.0):
    for service in services:
        service.try_warm_up()
    directory = socket_dir()
    engine = Engine(services, f"{directory}/engine.sock", max_queue_delay_ms=max_queue_delay_ms)
    engine.start()
    try:
        with ThreadServer(frontend_app(engine.socket_path, slot_bytes=slot_bytes, grpc_port=grpc_port),
                          ready_path=f"/v2/models/{services[0].name}/ready") as server:
            yield server
    finally:
        engine.stop()
        shutil.rmtree(directory, ignore_errors=True)


def listening(process: psutil.Process) -> list:
    return (process.net_connections if hasattr(process, "net_connections") else process.connections)()  # psutil < 6


def body(x: torch.Tensor) -> dict:
    return {"inputs": [tensor_input("input", x)[0]]}


def test_the_engine_answers_http_and_grpc_like_the_model_and_batches(linear):
    model = pt2kit.load(linear)
    grpc_port = free_port()
    # slots of 256 bytes: a 1x16 float32 request (64 bytes) and its output fit a slot, an 8-row one (512 bytes) takes 4
    with engine_server(load_services([linear], max_batch_size=8), slot_bytes=256, grpc_port=grpc_port, max_queue_delay_ms=50) as server:
        url = f"{server.url}/v2/models/linear/infer"
        for rows in (1, 8):
            x = torch.randn(rows, 16)
            response = httpx.post(url, json=body(x))
            assert response.status_code == 200, response.text
            torch.testing.assert_close(torch.tensor(response.json()["outputs"][0]["data"]).reshape(rows, 4), model(x))
        x = torch.randn(2, 16)
        entry, raw = tensor_input("input", x, binary=True)
        head = httpx.Request("POST", url, json={"inputs": [entry]}).content
        response = httpx.post(url, content=head + raw, headers={"Inference-Header-Content-Length": str(len(head))})
        assert response.status_code == 200, response.text
        assert httpx.post(url, json=body(torch.randn(1, 15))).status_code == 400

        xs = [torch.randn(1, 16) for _ in range(8)]

        async def concurrent():
            async with httpx.AsyncClient(timeout=30) as client:
                return await asyncio.gather(*(client.post(url, json=body(x)) for x in xs))

        for x, response in zip(xs, asyncio.run(concurrent())):
            torch.testing.assert_close(torch.tensor(response.json()["outputs"][0]["data"]).reshape(1, 4), model(x))
        stats = httpx.get(f"{server.url}/v2/models/linear/stats").json()["model_stats"][0]
        assert stats["inference_count"] == 1 + 8 + 2 + 8 and stats["execution_count"] < 3 + 8  # the 8 shared batches
        assert 'pt2kit_requests_total{code="200",model="linear"} 11.0' in httpx.get(f"{server.url}/metrics").text

        import numpy as np
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        tensor = grpcclient.InferInput("input", [3, 16], "FP32")
        x = torch.randn(3, 16)
        tensor.set_data_from_numpy(x.numpy().astype(np.float32))
        torch.testing.assert_close(torch.from_numpy(client.infer("linear", [tensor]).as_numpy("output")), model(x))
        client.close()


def test_a_model_that_raises_gets_500_and_the_engine_goes_on(linear):
    raising = RaisingService("raising", pt2kit.load(linear), max_batch_size=8)
    with engine_server([raising]) as server:
        url = f"{server.url}/v2/models/raising/infer"
        bad = httpx.post(url, json=body(torch.full((1, 16), 13.0)))
        assert bad.status_code == 500 and set(bad.json()) == {"error"} and "boom: the model hit a bad value" in bad.text
        assert httpx.post(url, json=body(torch.zeros(1, 16))).status_code == 200
        assert 'pt2kit_requests_total{code="500",model="raising"} 1.0' in httpx.get(f"{server.url}/metrics").text


def test_a_model_whose_warm_up_failed_is_not_ready(linear):
    (warm,) = load_services([linear])
    cold = ColdService("cold", warm.artifact, max_batch_size=8)
    with engine_server([warm, cold]) as server:
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 503
        response = httpx.post(f"{server.url}/v2/models/cold/infer", json=body(torch.zeros(1, 16)))
    assert response.status_code == 503 and "failed its warm-up" in response.json()["error"] and "out of memory" in response.text


def test_frontends_share_the_port_and_sigterm_drains_them_then_the_engine(linear):
    with subprocess_server(linear, "--frontends", "2", "--threads", "1", "--max-queue-delay-ms", "700") as (proc, url):
        port = int(url.rsplit(":", 1)[1])
        frontends = psutil.Process(proc.pid).children()
        assert len(frontends) == 2
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(
                any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in listening(f)) for f in frontends):
            time.sleep(0.2)  # the second front end may still be starting
        answers = []
        client = threading.Thread(target=lambda: answers.append(httpx.post(f"{url}/v2/models/linear/infer", json=body(torch.randn(1, 16)), timeout=30)))
        client.start()
        time.sleep(0.3)  # the request now waits in the engine's queue (700 ms delay)
        proc.send_signal(signal.SIGTERM)
        client.join(timeout=30)
        assert proc.wait(timeout=30) == 0
        assert answers and answers[0].status_code == 200, answers
        assert "Traceback" not in proc.stderr.read()


def test_frontends_with_workers_or_ray_is_a_usage_error(cli, linear):
    check_one_line_error(cli("serve", linear, "--frontends", "2", "--workers", "2"), "`--frontends` and `--workers`")
    check_one_line_error(cli("serve", linear, "--frontends", "-1"), "`--frontends` must be at least 0")
