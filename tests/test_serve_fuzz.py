"""Property-based fuzz of the infer route: whatever the body, the answer is 200 or a 4xx with one line of JSON, never a
5xx or a dropped connection. benchmarks/serve/serve_fuzz.py runs the same strategies 10,000+ times."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from serve_fuzz_strategies import infer_body  # noqa: E402  (tests/ is on sys.path through conftest)
from serve_fuzz_strategies import grpc_infer_request  # noqa: E402
from serve_support import ThreadServer, export, free_port  # noqa: E402

from pt2kit.serve import create_app, load_services

CASES = 300


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    paths = [export("linear_relu", folder / "linear.pt2", "input:0=batch[1,64]"),
             export("two_inputs_dict_out", folder / "pair.pt2", "x:0=batch[1,64],x:1=seq[2,16],mask:0=batch,mask:1=seq")]
    grpc_port = free_port()
    app = create_app(load_services(paths, max_batch_size=8), max_body_bytes=1024 * 1024, grpc_port=grpc_port)
    with ThreadServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        metas = {name: client.get(f"/v2/models/{name}").json() for name in ("linear", "pair")}
        client.grpc_target = f"127.0.0.1:{grpc_port}"
        yield client, metas


def check_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code != 200:
        assert response.status_code in (400, 404, 413), response.status_code
        assert response.text.count("\n") == 1 and list(json.loads(response.text)) == ["error"], response.text


@pytest.mark.parametrize("model", ["linear", "pair"])
def test_fuzzed_infer_requests_never_get_a_5xx(fuzz_target, model):
    client, metas = fuzz_target
    meta = metas[model]
    codes: dict[int, int] = {}

    @settings(max_examples=CASES // 2, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(infer_body(meta, [o["name"] for o in meta["outputs"]]))
    def run(case):
        body, headers = case
        response = client.post(f"/v2/models/{model}/infer", content=body, headers=headers)
        check_answer(response)
        codes[response.status_code] = codes.get(response.status_code, 0) + 1

    run()
    assert sum(codes.values()) >= CASES // 2 and codes.get(400, 0) > 0, codes


@pytest.mark.parametrize("model", ["linear", "pair"])
def test_fuzzed_grpc_requests_never_get_an_internal_error(fuzz_target, model):
    """The same bent requests as gRPC messages: OK or a client's status with a one-line message, never INTERNAL/UNKNOWN."""
    grpc = pytest.importorskip("grpc")
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    client, metas = fuzz_target
    meta = metas[model]
    codes: dict[str, int] = {}
    with grpc.insecure_channel(client.grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)

        @settings(max_examples=CASES // 3, deadline=None, database=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
        @given(grpc_infer_request(model, meta, [o["name"] for o in meta["outputs"]]))
        def run(message):
            try:
                stub.ModelInfer(message, timeout=30)
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
                assert code in ("INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED"), (code, exc.details())
                assert exc.details() and "\n" not in exc.details() and "Traceback" not in exc.details()
            codes[code] = codes.get(code, 0) + 1

        run()
        garbage = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")  # bytes that are no protobuf message
        with pytest.raises(grpc.RpcError) as bad:
            garbage(b"\xff\xff\xff\x0f not a message", timeout=30)
        assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "not an inference.ModelInferRequest" in bad.value.details()
        assert stub.ServerLive(service_pb2.ServerLiveRequest()).live  # and the server goes on
    assert sum(codes.values()) >= CASES // 3 and codes.get("INVALID_ARGUMENT", 0) > 0, codes
