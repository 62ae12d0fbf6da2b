"""Clients nobody here wrote, against a real server on 127.0.0.1 (HTTP and gRPC in one process): NVIDIA's tritonclient
(HTTP and gRPC), KServe's v2 clients (REST and gRPC) and perf_analyzer, where its binary runs."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import pt2kit
from serve_support import ThreadServer, export, free_port  # noqa: E402  (tests/ is on sys.path)

from pt2kit.serve import create_app, load_services

http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is in the test extra")
grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is in the test extra")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    return export("linear_relu", tmp_path_factory.mktemp("serve-clients") / "linear.pt2", "input:0=batch[1,64]")


@pytest.fixture(scope="module")
def server(linear):
    grpc_port = free_port()
    app = create_app(load_services([linear], max_batch_size=8), max_queue_delay_ms=1, grpc_port=grpc_port)
    with ThreadServer(app) as running:
        running.grpc = f"127.0.0.1:{grpc_port}"
        running.http = running.url.removeprefix("http://")
        yield running


@pytest.fixture(scope="module")
def model(linear):
    loaded = pt2kit.load(linear)
    return lambda x: loaded(x).detach()


def _inputs(module, x: np.ndarray, binary: bool | None = None):
    entry = module.InferInput("input", list(x.shape), "FP32")
    if binary is None:
        entry.set_data_from_numpy(x)
    else:
        entry.set_data_from_numpy(x, binary_data=binary)
    return [entry]


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_http_infers_with_compression_and_versions(server, model, binary):
    client = http.InferenceServerClient(server.http)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("linear", "1")
    assert client.get_model_metadata("linear", "1")["inputs"][0]["shape"] == [-1, 16]
    config = client.get_model_config("linear")
    assert config["max_batch_size"] == 8 and config["input"][0]["dims"] == [16]
    x = np.random.randn(3, 16).astype(np.float32)
    outputs = [http.InferRequestedOutput("output", binary_data=binary)]
    result = client.infer("linear", _inputs(http, x, binary), model_version="1", outputs=outputs, request_id="r1",
                          request_compression_algorithm="gzip", response_compression_algorithm="deflate")
    np.testing.assert_allclose(result.as_numpy("output"), model(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)
    assert result.get_response()["id"] == "r1"
    top = client.infer("linear", _inputs(http, x, binary), outputs=[http.InferRequestedOutput("output", binary, class_count=2)])
    first = top.as_numpy("output")[0, 0]
    assert top.as_numpy("output").shape == (3, 2) and ":" in (first.decode() if isinstance(first, bytes) else first)
    stats = client.get_inference_statistics("linear")["model_stats"][0]
    assert stats["inference_stats"]["success"]["count"] >= 2 and stats["execution_count"] >= 2
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.infer("nope", _inputs(http, x, binary))
    client.close()


def test_tritonclient_grpc_infers_and_reads_config_and_stats(server, model):
    client = grpcclient.InferenceServerClient(server.grpc)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("linear")
    assert "statistics" in client.get_server_metadata().extensions
    assert list(client.get_model_metadata("linear").inputs[0].shape) == [-1, 16]
    config = client.get_model_config("linear", as_json=True)["config"]
    assert config["max_batch_size"] == 8 and config["input"][0]["dims"] == ["16"]  # protobuf JSON writes int64 as text
    x = np.random.randn(2, 16).astype(np.float32)
    for compression in (None, "gzip"):
        result = client.infer("linear", _inputs(grpcclient, x), model_version="1", request_id="g1", compression_algorithm=compression,
                              outputs=[grpcclient.InferRequestedOutput("output")])
        np.testing.assert_allclose(result.as_numpy("output"), model(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)
    assert result.get_response().id == "g1"
    top = client.infer("linear", _inputs(grpcclient, x), outputs=[grpcclient.InferRequestedOutput("output", class_count=3)])
    assert top.as_numpy("output").shape == (2, 3)
    stats = client.get_inference_statistics("linear", as_json=True)["model_stats"][0]
    assert int(stats["inference_stats"]["success"]["count"]) >= 3
    with pytest.raises(InferenceServerException, match="dim 1 has size 15"):
        client.infer("linear", _inputs(grpcclient, np.zeros((1, 15), np.float32)))
    with pytest.raises(InferenceServerException, match="version 1 only"):
        client.get_model_config("linear", model_version="7")
    client.close()


KSERVE_CLIENT = """
import asyncio, sys
import numpy as np
import kserve

rest_url, grpc_url = sys.argv[1:3]
x = np.arange(32, dtype=np.float32).reshape(2, 16) / 10


async def both():
    rest = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", timeout=30))
    for binary in (False, True):
        entry = kserve.InferInput("input", [2, 16], "FP32")
        entry.set_data_from_numpy(x, binary_data=binary)
        response = await rest.infer(rest_url, kserve.InferRequest(model_name="linear", infer_inputs=[entry], request_id="k"),
                                    model_name="linear")
        print("rest", binary, response.outputs[0].as_numpy().tolist())
    await rest.close()
    async with kserve.InferenceGRPCClient(grpc_url, timeout=30) as client:
        entry = kserve.InferInput("input", [2, 16], "FP32")
        entry.set_data_from_numpy(x, binary_data=True)
        response = await client.infer(kserve.InferRequest(model_name="linear", infer_inputs=[entry], request_id="kg"))
        print("grpc", True, response.outputs[0].as_numpy().tolist())

asyncio.run(both())
"""


def test_kserve_v2_clients_rest_and_grpc(server, model):
    """In a child process: KServe's generated gRPC messages and tritonclient's (the server's) share their proto names,
    and one process's protobuf registry takes only one of them."""
    if importlib.util.find_spec("kserve") is None:
        pytest.skip("kserve is not installed (it is in the test extra)")
    run = subprocess.run([sys.executable, "-c", KSERVE_CLIENT, server.url, server.grpc], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    want = model(torch.arange(32, dtype=torch.float32).reshape(2, 16) / 10)
    lines = run.stdout.strip().splitlines()
    assert [line.split(" ", 2)[:2] for line in lines] == [["rest", "False"], ["rest", "True"], ["grpc", "True"]]
    for line in lines:
        torch.testing.assert_close(torch.tensor(json.loads(line.split(" ", 2)[2])), want)


def perf_analyzer_env() -> dict[str, str]:
    """The environment perf_analyzer needs: libcudart.so.12 from pip's nvidia-cuda-runtime-cu12 on the library path."""
    env = dict(os.environ)
    spec = importlib.util.find_spec("nvidia.cuda_runtime")
    if spec is not None and spec.submodule_search_locations:
        lib = os.path.join(list(spec.submodule_search_locations)[0], "lib")
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [lib, env.get("LD_LIBRARY_PATH")]))
    return env


def perf_analyzer() -> tuple[str | None, str]:
    """The perf_analyzer binary and the reason it cannot run here ("" when it can)."""
    found = shutil.which("perf_analyzer") or str(Path(sys.executable).parent / "perf_analyzer")
    if not os.path.exists(found):
        return None, "perf_analyzer is not installed (`make perf-analyzer` unpacks it from the tritonclient 2.50.0 wheel)"
    probe = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30, env=perf_analyzer_env())
    if probe.returncode != 0:
        return None, f"perf_analyzer cannot start: {probe.stderr.strip()[:200]} (`make perf-analyzer` installs libb64-0d and libcudart)"
    return found, ""


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_perf_analyzer_measures_the_server(server, protocol):
    binary, reason = perf_analyzer()
    if binary is None:
        pytest.skip(reason)
    url = server.http if protocol == "http" else server.grpc
    run = subprocess.run([binary, "-m", "linear", "-u", url, "-i", protocol, "-b", "1", "--concurrency-range", "4",
                          "--measurement-mode", "count_windows", "--measurement-request-count", "100", "--max-trials", "3",
                          "--stability-percentage", "999"], capture_output=True, text=True, timeout=120, env=perf_analyzer_env())
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Concurrency: 4, throughput:" in run.stdout, run.stdout[-2000:]
