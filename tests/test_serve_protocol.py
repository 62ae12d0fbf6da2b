"""What real OIP clients send and ask for: `model_name` in the body, versioned routes, Triton's config and statistics,
gzip and deflate both ways, the `classification` parameter; and the failure paths: a model that raises (500, counted,
the server goes on), a model whose warm-up failed (not ready), a body over the limit while the client still sends."""

from __future__ import annotations

import gzip
import json
import zlib

import httpx
import pytest
import torch

import pt2kit
from serve_support import ThreadServer, export, tensor_input  # noqa: E402  (tests/ is on sys.path)

from pt2kit.serve import ModelService, create_app, load_services

MAX_BODY = 256 * 1024


class RaisingService(ModelService):
    """A real model that raises when the first value of its input is 13 (a model bug on some inputs)."""

    def run_batch(self, requests):
        if any(float(r.tensors["input"].reshape(-1)[0]) == 13 for r in requests):
            raise RuntimeError("boom: the model hit a bad value")
        return super().run_batch(requests)


class ColdService(ModelService):
    def warm_up(self):
        raise RuntimeError("CUDA out of memory (simulated)")


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    return export("linear_relu", tmp_path_factory.mktemp("serve-protocol") / "linear.pt2", "input:0=batch[1,64]")


@pytest.fixture(scope="module")
def server(linear):
    services = load_services([linear], max_batch_size=8)
    raising = RaisingService("raising", pt2kit.load(linear), max_batch_size=8)
    with ThreadServer(create_app([*services, raising], max_queue_delay_ms=2, max_body_bytes=MAX_BODY)) as running:
        yield running


def body(x: torch.Tensor, **extra) -> dict:
    return {"inputs": [tensor_input("input", x)[0]], **extra}


def test_kserve_style_fields_are_accepted_and_unknown_ones_ignored(server, linear):
    x = torch.randn(2, 16)
    response = httpx.post(f"{server.url}/v2/models/linear/infer", json=body(x, model_name="linear", model_version="1", trace={"a": 1}))
    assert response.status_code == 200, response.text
    torch.testing.assert_close(torch.tensor(response.json()["outputs"][0]["data"]).reshape(2, 4), pt2kit.load(linear)(x))
    response = httpx.post(f"{server.url}/v2/models/linear/infer", json=body(x, model_version="2"))
    assert response.status_code == 404 and "version 1 only" in response.json()["error"]


def test_every_model_route_is_served_under_versions_1(server):
    base = f"{server.url}/v2/models/linear/versions/1"
    assert httpx.get(base).json()["name"] == "linear"
    assert httpx.get(f"{base}/ready").status_code == 200
    assert httpx.get(f"{base}/config").json()["max_batch_size"] == 8
    assert httpx.get(f"{base}/stats").json()["model_stats"][0]["name"] == "linear"
    assert httpx.post(f"{base}/infer", json=body(torch.randn(1, 16))).status_code == 200
    response = httpx.get(f"{server.url}/v2/models/linear/versions/2")
    assert response.status_code == 404 and "no version `2`" in response.json()["error"]
    assert httpx.get(f"{server.url}/v2/models/nope/versions/1/config").status_code == 404


def test_config_and_stats_follow_triton(server):
    config = httpx.get(f"{server.url}/v2/models/linear/config").json()
    assert config["max_batch_size"] == 8 and "dynamic_batching" in config
    assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "format": "FORMAT_NONE", "dims": [16],
                                "is_shape_tensor": False, "allow_ragged_batch": False, "optional": False}]
    assert config["output"] == [{"name": "output", "data_type": "TYPE_FP32", "dims": [4]}]
    extensions = httpx.get(f"{server.url}/v2").json()["extensions"]
    assert {"model_configuration", "statistics", "classification", "binary_tensor_data"} <= set(extensions)
    before = httpx.get(f"{server.url}/v2/models/linear/stats").json()["model_stats"][0]
    for _ in range(3):
        assert httpx.post(f"{server.url}/v2/models/linear/infer", json=body(torch.randn(2, 16))).status_code == 200
    after = httpx.get(f"{server.url}/v2/models/linear/stats").json()["model_stats"][0]
    assert after["inference_stats"]["success"]["count"] == before["inference_stats"]["success"]["count"] + 3
    assert after["inference_count"] == before["inference_count"] + 6  # rows, as Triton counts them
    assert after["execution_count"] >= before["execution_count"] + 1
    for phase in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert after["inference_stats"][phase]["count"] == before["inference_stats"][phase]["count"] + 3, phase
    assert after["inference_stats"]["compute_infer"]["ns"] > before["inference_stats"]["compute_infer"]["ns"]
    assert {s["name"] for s in httpx.get(f"{server.url}/v2/models/stats").json()["model_stats"]} == {"linear", "raising"}


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_request_and_response(server, linear, encoding):
    x = torch.randn(40, 16)  # a response over 1 KiB: smaller ones go uncompressed
    raw = json.dumps(body(x)).encode()
    packed = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    response = httpx.post(f"{server.url}/v2/models/linear/infer", content=packed,
                          headers={"Content-Encoding": encoding, "Accept-Encoding": encoding})
    assert response.status_code == 200, response.text
    assert response.headers["content-encoding"] == encoding  # httpx inflated it: .json() below reads the plain body
    torch.testing.assert_close(torch.tensor(response.json()["outputs"][0]["data"]).reshape(40, 4), pt2kit.load(linear)(x))


def test_bad_encodings_and_bombs_are_4xx(server):
    url = f"{server.url}/v2/models/linear/infer"
    assert httpx.post(url, content=b"{}", headers={"Content-Encoding": "br"}).status_code == 415
    response = httpx.post(url, content=b"not gzip at all", headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400 and "not valid gzip" in response.json()["error"]
    bomb = gzip.compress(b" " * (MAX_BODY * 8))  # a few KiB that inflate past the limit
    response = httpx.post(url, content=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413 and "over the limit" in response.json()["error"]


def test_classification_gives_triton_top_k_strings(server, linear):
    x = torch.randn(2, 16)
    out = [{"name": "output", "parameters": {"classification": 3}}]
    response = httpx.post(f"{server.url}/v2/models/linear/infer", json=body(x, outputs=out))
    assert response.status_code == 200, response.text
    entry = response.json()["outputs"][0]
    assert entry["datatype"] == "BYTES" and entry["shape"] == [2, 3]
    scores, indices = torch.topk(pt2kit.load(linear)(x), 3)
    want = [f"{s:f}:{i}" for s, i in zip(scores.reshape(-1).tolist(), indices.reshape(-1).tolist())]
    assert entry["data"] == want


def test_a_model_that_raises_gets_500_is_counted_and_the_server_goes_on(server):
    url = f"{server.url}/v2/models/raising/infer"
    bad = httpx.post(url, json=body(torch.full((1, 16), 13.0)))
    assert bad.status_code == 500 and set(bad.json()) == {"error"}
    assert "boom: the model hit a bad value" in bad.json()["error"] and bad.text.count("\n") == 1
    assert httpx.post(url, json=body(torch.zeros(1, 16))).status_code == 200
    assert 'pt2kit_requests_total{code="500",model="raising"} 1.0' in httpx.get(f"{server.url}/metrics").text
    stats = httpx.get(f"{server.url}/v2/models/raising/stats").json()["model_stats"][0]["inference_stats"]
    assert stats["fail"]["count"] == 1 and stats["success"]["count"] == 1


def test_a_model_whose_warm_up_failed_is_not_ready(linear):
    (warm,) = load_services([linear])
    cold = ColdService("cold", warm.artifact, max_batch_size=8)
    with ThreadServer(create_app([warm, cold]), ready_path="/v2/models/linear/ready") as server:
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 503
        assert httpx.get(f"{server.url}/v2/models/cold/ready").status_code == 503
        response = httpx.post(f"{server.url}/v2/models/cold/infer", json=body(torch.zeros(1, 16)))
    assert response.status_code == 503 and "failed its warm-up" in response.json()["error"] and "out of memory" in response.text


def test_a_body_over_the_limit_gets_413_while_the_client_still_sends(server):
    big = b" " * (16 * 1024 * 1024)  # far past the socket buffers: the server must read on to answer
    response = httpx.post(f"{server.url}/v2/models/linear/infer", content=big, timeout=60)
    assert response.status_code == 413 and "over the limit" in response.json()["error"]


@pytest.mark.parametrize("order", [("s0", "s1"), ("s1", "s0")])
def test_the_batch_dim_is_the_shared_dim_nearest_the_front(order):
    """A decoder's `input_ids[batch, seq]`: requests stack along `batch` whichever symbol torch named first."""
    from pt2kit.artifact.manifest import DimRange, LeafSpec, Manifest
    from pt2kit.serve.service import find_batch_dim

    batch_symbol, seq_symbol = order
    dims = {batch_symbol: DimRange(batch_symbol, "batch", 1, 8), seq_symbol: DimRange(seq_symbol, "seq", 2, 1024)}
    manifest = Manifest(inputs=(LeafSpec("input_ids", "tensor", "int64", (batch_symbol, seq_symbol)),),
                        outputs=(LeafSpec("logits", "tensor", "bfloat16", (batch_symbol, seq_symbol, 32000)),),
                        dims=tuple(dims[s] for s in sorted(dims)))
    found, reason = find_batch_dim(manifest)
    assert reason == "" and (found.name, found.position, found.outputs, found.max) == ("batch", 0, {"logits": 0}, 8)
