"""`pt2kit serve` as a process: SIGTERM drains and exits 0, bad command lines exit 2 in one line, a full queue answers
503 with Retry-After, memory stays flat under bad requests, and an AOTInductor package serves batched requests."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time

import httpx
import psutil
import pytest
import torch

import pt2kit
from conftest import check_one_line_error  # noqa: E402
from serve_support import GatedService, ThreadServer, export, subprocess_server, tensor_input, wait_for_queue  # noqa: E402

from pt2kit.serve import create_app, load_services


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    return export("linear_relu", tmp_path_factory.mktemp("serve-proc") / "linear.pt2", "input:0=batch[1,64]")


def body(batch: int = 1) -> dict:
    return {"inputs": [tensor_input("input", torch.randn(batch, 16))[0]]}


def test_sigterm_finishes_requests_in_flight_then_exits_0(linear):
    with subprocess_server(linear, "--max-queue-delay-ms", "700") as (proc, url):
        answers = []
        client = threading.Thread(target=lambda: answers.append(httpx.post(f"{url}/v2/models/linear/infer", json=body(), timeout=30)))
        client.start()
        time.sleep(0.3)  # the request now waits in the batch queue (700 ms delay)
        proc.send_signal(signal.SIGTERM)
        client.join(timeout=30)
        assert proc.wait(timeout=30) == 0
        assert answers and answers[0].status_code == 200, answers
        with pytest.raises(httpx.ConnectError):  # no longer taking requests
            httpx.get(f"{url}/v2/health/live", timeout=2)
        assert "Traceback" not in proc.stderr.read()


def listening(process: psutil.Process) -> list:
    return (process.net_connections if hasattr(process, "net_connections") else process.connections)()  # psutil < 6: connections


def test_workers_share_the_port_and_stop_together(linear):
    """`--workers 2`: two server processes listening on one port (SO_REUSEPORT); SIGTERM stops both, exit 0."""
    with subprocess_server(linear, "--workers", "2", "--threads", "1") as (proc, url):
        port = int(url.rsplit(":", 1)[1])
        workers = psutil.Process(proc.pid).children()
        assert len(workers) == 2
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(
                any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in listening(w)) for w in workers):
            time.sleep(0.2)  # the second worker may still be loading
        for _ in range(8):  # one connection each: the kernel picks a worker per connection
            assert httpx.post(f"{url}/v2/models/linear/infer", json=body(), timeout=30).status_code == 200
        assert all(any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in listening(w)) for w in workers)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


def test_a_drain_that_times_out_says_so_and_exits_1(linear):
    with subprocess_server(linear, "--max-queue-delay-ms", "5000", "--drain-timeout", "0.3") as (proc, url):
        answers = []
        client = threading.Thread(target=lambda: answers.append(httpx.post(f"{url}/v2/models/linear/infer", json=body(), timeout=30)))
        client.start()
        time.sleep(0.3)  # the request waits 5 s in the batch queue, longer than the drain may take
        proc.send_signal(signal.SIGTERM)
        client.join(timeout=30)
        assert proc.wait(timeout=30) == 1
        err = proc.stderr.read()
    assert "drain timed out after 0.3 s and 1 request(s) in flight were cut off" in err, err
    assert "every request in flight was answered" not in err and "Traceback" not in err


def test_a_failed_start_up_returns_1(linear, capsys):
    from pt2kit.serve import ServeOptions, run_server
    from serve_support import free_port

    class BrokenBackend:
        async def start(self):
            raise RuntimeError("no GPU left")

        async def stop(self):
            pass

    app = create_app(load_services([linear]), backend=BrokenBackend())
    assert run_server(app, ServeOptions(port=free_port())) == 1
    err = capsys.readouterr().err
    assert "did not start" in err and "every request in flight was answered" not in err


def test_threads_win_over_the_manifest(linear, monkeypatch):
    """`--threads` goes to `pt2kit.load`, which would otherwise apply the thread count `pt2kit tune` recorded."""
    import pt2kit.serve.service as service_module
    from pt2kit.serve import ServeOptions, build_app

    seen = []
    real_load = service_module.load
    monkeypatch.setattr(service_module, "load", lambda path, **kw: seen.append(kw) or real_load(path, **kw))
    before = torch.get_num_threads()
    try:
        build_app([linear], ServeOptions(threads=1))
    finally:
        torch.set_num_threads(before)
    assert seen == [{"threads": 1}]


def test_cli_usage_errors_are_one_line_exit_2(cli, linear, tmp_path):
    check_one_line_error(cli("serve", tmp_path / "missing.pt2"), "missing.pt2", "does not exist")
    check_one_line_error(cli("serve", linear, linear, "--name", "a"), "`--name` names one artifact")
    check_one_line_error(cli("serve", linear, linear), "would both be served as `linear`")
    check_one_line_error(cli("serve", linear, "--max-batch-size", "0"), "`--max-batch-size` must be at least 1")
    check_one_line_error(cli("serve", linear, "--port", "8123", "--grpc-port", "8123"), "`--grpc-port` must be a port")
    check_one_line_error(cli("serve", linear, "--workers", "0"), "`--workers` must be at least 1")
    (tmp_path / "notzip.pt2").write_text("hello")
    check_one_line_error(cli("serve", tmp_path / "notzip.pt2"), "corrupt")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        check_one_line_error(cli("serve", linear, "--port", str(taken.getsockname()[1])), "cannot serve on 127.0.0.1")


def test_a_full_queue_answers_503_with_retry_after(linear):
    service = GatedService("linear", pt2kit.load(linear), max_batch_size=1)
    app = create_app([service], max_queue=2)
    with ThreadServer(app) as server:
        async def scenario():
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                post = lambda: asyncio.ensure_future(client.post("/v2/models/linear/infer", json=body()))  # noqa: E731
                running = post()
                await asyncio.to_thread(service.entered.wait, 60)  # taken by the worker, held at the gate
                queued = [post(), post()]
                await asyncio.to_thread(wait_for_queue, app, "linear", 2)
                refused = await client.post("/v2/models/linear/infer", json=body())
                service.gate.set()
                return refused, await asyncio.gather(running, *queued)

        refused, answered = asyncio.run(scenario())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1" and "queue" in refused.json()["error"]
    assert [r.status_code for r in answered] == [200, 200, 200]


BAD = [
    b"{not json", b"{}", b'{"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": ["x"]}]}',
    b'{"inputs": [{"name": "zz", "shape": [1], "datatype": "FP32", "data": [1]}]}',
    b'{"inputs": [{"name": "input", "shape": [1, 16], "datatype": "FP32", "data": [' + b"1e3, " * 15 + b'1]}], "id": "' + b"i" * 300 + b'"}',
    b'{"inputs": [{"name": "input", "shape": [999, 16], "datatype": "FP32", "data": [' + b"0," * 15983 + b"0]}]}",
]


def test_memory_stays_flat_under_2000_bad_requests(linear):
    with subprocess_server(linear) as (proc, url), httpx.Client(base_url=url, timeout=30) as client:
        def burst(n: int) -> None:
            for i in range(n):
                model = "linear" if i % 7 else f"nope{i}"  # unknown names too: they must not grow label sets
                response = client.post(f"/v2/models/{model}/infer", content=BAD[i % len(BAD)])
                assert 400 <= response.status_code < 500, response.text

        burst(400)  # allocator and caches settle
        before = psutil.Process(proc.pid).memory_info().rss
        burst(2000)
        growth = psutil.Process(proc.pid).memory_info().rss - before
    assert growth < 4 * 1024 * 1024, f"RSS grew {growth / 2**20:.1f} MiB over 2000 bad requests"


@pytest.mark.slow
@pytest.mark.skipif(tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) < (2, 13),
                    reason="torch before 2.13 unpacks into /tmp/XXXXXX, ignoring TMPDIR")
def test_a_stopped_server_leaves_no_extracted_package_behind(small_aoti_package, tmp_path):
    """AOTInductor extracts a package's .so under $TMPDIR (aotinductor_*) and removes it only when its loader is destroyed."""
    with subprocess_server(small_aoti_package, env={"TMPDIR": str(tmp_path)}) as (proc, url):
        assert httpx.post(f"{url}/v2/models/linear/infer", json=body(), timeout=30).status_code == 200
        assert list(tmp_path.rglob("aotinductor_*")), "the served package was not extracted under TMPDIR"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not list(tmp_path.rglob("aotinductor_*"))


@pytest.mark.slow
def test_aoti_package_serves_batched_requests(small_aoti_package):
    """The AOTInductor package (built once per session) behind the batcher: outputs match `pt2kit.load`'s."""
    (loaded,) = load_services([small_aoti_package], max_batch_size=16)
    assert loaded.platform == "pt2kit_aoti" and loaded.batch_dim is not None
    service = GatedService("linear", loaded.artifact, max_batch_size=16)
    reference = pt2kit.load(small_aoti_package)
    inputs = [torch.randn(k, 16) for k in (1, 3, 2, 1, 4, 1, 1, 2)]
    app = create_app([service])
    with ThreadServer(app) as server:
        async def send():
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                post = lambda x: asyncio.ensure_future(client.post("/v2/models/linear/infer", json={"inputs": [tensor_input("input", x)[0]]}))  # noqa: E731
                first = post(inputs[0])
                await asyncio.to_thread(service.entered.wait, 60)  # the first is at the gate; the rest queue behind it
                rest = [post(x) for x in inputs[1:]]
                await asyncio.to_thread(wait_for_queue, app, "linear", len(rest))
                service.gate.set()
                return await asyncio.gather(first, *rest)

        responses = asyncio.run(send())
        metrics = httpx.get(f"{server.url}/metrics").text
    for x, response in zip(inputs, responses):
        assert response.status_code == 200, response.text
        out = response.json()["outputs"][0]
        torch.testing.assert_close(torch.tensor(out["data"]).reshape(out["shape"]), reference(x))
    calls = float(next(ln.split()[-1] for ln in metrics.splitlines() if ln.startswith('pt2kit_batch_size_count{model="linear"}')))
    assert calls == 2  # the first alone, then the 7 queued (14 rows, max 16) in one call
