"""`pt2kit serve`: the Open Inference Protocol routes, checks, batching and metrics against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import torch

import pt2kit
from serve_support import GatedService, ThreadServer, export, tensor_input, wait_for_queue  # noqa: E402  (tests/ is on sys.path)

from pt2kit.serve import create_app, load_services

MAX_BODY = 256 * 1024


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    return {
        "linear": export("linear_relu", folder / "linear.pt2", "input:0=batch[1,64]"),
        "pair": export("two_inputs_dict_out", folder / "pair.pt2", "x:0=batch[1,64],x:1=seq[2,16],mask:0=batch,mask:1=seq"),
        "fixed": export("linear_relu", folder / "fixed.static.pt2", None),
    }


@pytest.fixture(scope="module")
def server(programs):
    services = load_services(list(programs.values()), max_batch_size=8)
    app = create_app(services, max_queue_delay_ms=5, max_body_bytes=MAX_BODY)
    with ThreadServer(app) as running:
        yield running


@pytest.fixture(scope="module")
def reference(programs):
    return {name: pt2kit.load(path) for name, path in programs.items()}


def infer(url: str, model: str, inputs: list[tuple[str, torch.Tensor]], *, binary_in=False, binary_out=False, **extra) -> httpx.Response:
    entries, chunks = zip(*(tensor_input(n, t, binary_in) for n, t in inputs))
    body = {"inputs": list(entries), **extra}
    if binary_out:
        body.setdefault("parameters", {})["binary_data_output"] = True
    head = json.dumps(body).encode()
    headers = {"Inference-Header-Content-Length": str(len(head))} if binary_in else {}
    return httpx.post(f"{url}/v2/models/{model}/infer", content=head + b"".join(chunks), headers=headers, timeout=30)


def outputs_of(response: httpx.Response) -> dict[str, torch.Tensor]:
    """Decode a JSON or binary OIP response into tensors by name."""
    assert response.status_code == 200, response.text
    length = response.headers.get("inference-header-content-length")
    head = json.loads(response.content[: int(length)] if length else response.content)
    offset = int(length or 0)
    result = {}
    for out in head["outputs"]:
        dtype = {"FP32": torch.float32, "INT64": torch.int64, "BOOL": torch.bool}[out["datatype"]]
        if "parameters" in out and "binary_data_size" in out["parameters"]:
            size = out["parameters"]["binary_data_size"]
            raw = bytearray(response.content[offset: offset + size])
            offset += size
            result[out["name"]] = torch.frombuffer(raw, dtype=dtype).reshape(out["shape"]) if size else torch.empty(out["shape"], dtype=dtype)
        else:
            result[out["name"]] = torch.tensor(out["data"], dtype=dtype).reshape(out["shape"])
    return result


def test_health_and_metadata(server):
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{server.url}/v2/models/linear/ready").json() == {"name": "linear", "ready": True}
    meta = httpx.get(f"{server.url}/v2/models/pair").json()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, -1, 6]},
                              {"name": "mask", "datatype": "FP32", "shape": [-1, -1]}]
    assert [o["name"] for o in meta["outputs"]] == ["output['hidden']", "output['pair'][0]", "output['pair'][1]"]
    assert httpx.get(f"{server.url}/v2/models/fixed").json()["inputs"][0]["shape"] == [8, 16]
    assert "/v2/models/{name}/infer" in httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_infer_json_matches_the_artifact_and_echoes_the_id(server, reference):
    x = torch.randn(3, 16)
    response = infer(server.url, "linear", [("input", x)], id="req-7")
    assert response.json()["id"] == "req-7" and response.json()["model_name"] == "linear"
    torch.testing.assert_close(outputs_of(response)["output"], reference["linear"](x))


def test_binary_data_in_and_out(server, reference):
    x, mask = torch.randn(2, 4, 6), (torch.rand(2, 4) > 0.5).float()
    response = infer(server.url, "pair", [("x", x), ("mask", mask)], binary_in=True, binary_out=True)
    assert response.headers["content-type"] == "application/octet-stream"
    got, want = outputs_of(response), reference["pair"](x, mask, scale=2.0)
    torch.testing.assert_close(got["output['hidden']"], want["hidden"])
    torch.testing.assert_close(got["output['pair'][1]"], want["pair"][1])


def test_requested_outputs_only_and_mixed_encodings(server, reference):
    x, mask = torch.randn(1, 3, 6), torch.ones(1, 3)
    outputs = [{"name": "output['pair'][0]", "parameters": {"binary_data": True}}, {"name": "output['hidden']"}]
    response = infer(server.url, "pair", [("x", x), ("mask", mask)], outputs=outputs)
    got = outputs_of(response)
    assert list(got) == ["output['pair'][0]", "output['hidden']"]
    torch.testing.assert_close(got["output['pair'][0]"], reference["pair"](x, mask, scale=2.0)["pair"][0])


async def _concurrent(url: str, model: str, batches: list[dict[str, torch.Tensor]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        async def one(inputs):
            body = {"inputs": [tensor_input(n, t)[0] for n, t in inputs.items()]}
            return await client.post(f"{url}/v2/models/{model}/infer", json=body)
        return await asyncio.gather(*(one(b) for b in batches))


def _histogram(url: str, metric: str, model: str) -> tuple[float, float]:
    """(count, sum) of a per-model histogram from /metrics."""
    lines = httpx.get(f"{url}/metrics").text.splitlines()
    value = {kind: float(next(ln.split()[-1] for ln in lines if ln.startswith(f'{metric}_{kind}{{model="{model}"}}')))
             for kind in ("count", "sum")}
    return value["count"], value["sum"]


def test_concurrent_requests_are_batched_and_split_back(programs, reference):
    service = GatedService("linear", pt2kit.load(programs["linear"]), max_batch_size=8)
    app = create_app([service])
    first = torch.randn(1, 16)
    queued = [torch.randn(k, 16) for k in (1, 2, 1, 3, 1, 2)]  # 10 rows behind the first, at most 8 in one call

    async def scenario(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            def post(x):
                return asyncio.ensure_future(client.post("/v2/models/linear/infer", json={"inputs": [tensor_input("input", x)[0]]}))
            held = post(first)
            await asyncio.to_thread(service.entered.wait, 60)  # the first call waits at the gate
            rest = [post(x) for x in queued]
            await asyncio.to_thread(wait_for_queue, app, "linear", len(rest))
            service.gate.set()
            return await asyncio.gather(held, *rest)

    with ThreadServer(app) as server:
        responses = asyncio.run(scenario(server.url))
        calls, rows = _histogram(server.url, "pt2kit_batch_size", "linear")
    for x, response in zip([first, *queued], responses):
        torch.testing.assert_close(outputs_of(response)["output"], reference["linear"](x))
    assert rows == 11  # a request with its own batch of k counts k
    assert calls == 3  # the first alone, then the queued 10 rows as 8 or 7 and the rest: stacked, never over 8


def test_requests_with_other_dims_are_not_mixed(server, reference):
    requests = [{"x": torch.randn(1, seq, 6), "mask": torch.ones(1, seq)} for seq in (3, 5, 3, 5)]
    responses = asyncio.run(_concurrent(server.url, "pair", requests))
    for request, response in zip(requests, responses):
        want = reference["pair"](request["x"], request["mask"], scale=2.0)
        torch.testing.assert_close(outputs_of(response)["output['hidden']"], want["hidden"])


def test_a_model_without_a_batch_dim_runs_one_request_per_call(programs):
    (service,) = load_services([programs["fixed"]], max_batch_size=8)
    assert service.batch_dim is None and service.max_batch_size == 1
    assert "no batching (max batch 1)" in service.describe() and "no dynamic dim" in service.describe()


BAD_REQUESTS = [
    (b'{"inputs": [', "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b"[" * 100_000, "nested too deeply"),
    (b"{}", "`inputs` must be a non-empty list"),
    (b'{"inputs": [{"name": "nope", "shape": [1, 16], "datatype": "FP32", "data": []}]}', "unknown input `nope`"),
    (b'{"inputs": [{"name": "input", "shape": [1, 16], "datatype": "INT64", "data": []}]}', "datatype `INT64`"),
    (b'{"inputs": [{"name": "input", "shape": [16], "datatype": "FP32", "data": []}]}', "has 1 dims"),
    (b'{"inputs": [{"name": "input", "shape": [1, 15], "datatype": "FP32", "data": []}]}', "dim 1 has size 15"),
    (b'{"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": [1, 2]}]}', "has 2 values"),
    (b'{"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, "a"]}]}', "size 2"),
    (b'{"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": [' + b'"a", ' * 15 + b'"a"]}]}', "not all numbers"),
    (b'{"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": [' + b'null, ' * 15 + b'1]}]}', "not all numbers"),
    (b'{"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": [[1], [1, 2]]}]}', "not a flat or nested list"),
    (b'{"inputs": [{"name": "input", "shape": [65, 16], "datatype": "FP32", "data": [' + b"0, " * 1039 + b"0]}]}", "outside the range of `batch` [1, 64]"),
    (b'{"inputs": [{"name": "input", "shape": [0, 16], "datatype": "FP32", "data": []}]}', "outside the range"),
    (b'{"inputs": [{"name": "input", "shape": [1, -16], "datatype": "FP32", "data": []}]}', "non-negative integers"),
    (b'{"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "parameters": {"binary_data_size": 64}}]}', "remain in the body"),
    (b'{"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": [' + b"0, " * 15 + b'0]}], "outputs": [{"name": "zz"}]}', "unknown output `zz`"),
    (b'{"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": [' + b"0, " * 15 + b'0]}], "id": 5}', "`id` must be a string"),
    (b'{"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": [' + b"0, " * 15 + b'0]}], "model_name": "pair"}', "sent to model `linear`"),
    (b'{"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": [' + b"0, " * 15 + b'0]}], "outputs": [{"name": "output", "parameters": {"classification": 0}}]}', "positive integer"),
]


@pytest.mark.parametrize("body,needle", BAD_REQUESTS, ids=[n for _, n in BAD_REQUESTS])
def test_bad_requests_get_a_one_line_400(server, body, needle):
    response = httpx.post(f"{server.url}/v2/models/linear/infer", content=body)
    assert response.status_code == 400, response.text
    assert response.text.count("\n") == 1 and set(response.json()) == {"error"}
    assert needle in response.json()["error"], response.json()


def test_binary_header_errors(server):
    head = b'{"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "parameters": {"binary_data_size": 64}}]}'
    url = f"{server.url}/v2/models/linear/infer"
    for length, tail, needle in ((str(len(head)), b"\0" * 70, "no input claims"), ("abc", b"", "must be an integer"),
                                 (str(len(head) + 500), b"", "must be the length of the JSON part")):
        response = httpx.post(url, content=head + tail, headers={"Inference-Header-Content-Length": length})
        assert response.status_code == 400 and needle in response.json()["error"], response.text


def test_int_and_bool_inputs_are_checked(programs):
    from pt2kit.artifact.manifest import LeafSpec, Manifest
    from pt2kit.serve.protocol import RequestError, parse_infer_request

    manifest = Manifest(inputs=(LeafSpec("ids", "tensor", "int32", (2,)), LeafSpec("m", "tensor", "bool", (2,))), outputs=())
    ok = parse_infer_request(b'{"inputs": [{"name": "ids", "shape": [2], "datatype": "INT32", "data": [1, -7]},'
                             b' {"name": "m", "shape": [2], "datatype": "BOOL", "data": [true, false]}]}', manifest)
    assert ok.tensors["ids"].tolist() == [1, -7] and ok.tensors["m"].tolist() == [True, False]
    for ids, mask, needle in (("[1.5, 2]", "[true, false]", "must hold integers"), ("[1, 4294967296]", "[true, false]", "outside the range of INT32"),
                              ("[1, 2]", "[1, 0]", "true/false only")):
        body = (f'{{"inputs": [{{"name": "ids", "shape": [2], "datatype": "INT32", "data": {ids}}},'
                f' {{"name": "m", "shape": [2], "datatype": "BOOL", "data": {mask}}}]}}').encode()
        with pytest.raises(RequestError, match=needle):
            parse_infer_request(body, manifest)


def test_unknown_model_404_and_unknown_route_404(server):
    for method, path in (("POST", "/v2/models/resnet/infer"), ("GET", "/v2/models/resnet"), ("GET", "/v2/models/resnet/ready"),
                         ("GET", "/v2/repository/index")):
        response = httpx.request(method, server.url + path, content=b"{}")
        assert response.status_code == 404 and set(response.json()) == {"error"}


def test_body_over_the_limit_gets_413(server):
    response = httpx.post(f"{server.url}/v2/models/linear/infer", content=b"[" + b"0," * MAX_BODY + b"0]")
    assert response.status_code == 413 and "over the limit" in response.json()["error"]

    def chunks():  # no Content-Length: the limit applies while reading
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    response = httpx.post(f"{server.url}/v2/models/linear/infer", content=chunks())
    assert response.status_code == 413


def test_metrics_are_prometheus_text_per_model(server):
    text = httpx.get(f"{server.url}/metrics").text
    for name in ("pt2kit_requests_total", "pt2kit_request_duration_seconds", "pt2kit_queue_duration_seconds",
                 "pt2kit_inference_duration_seconds", "pt2kit_batch_size"):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert 'pt2kit_requests_total{code="200",model="linear"}' in text
    assert 'model="resnet"' not in text  # unknown names never become labels (memory stays flat)
