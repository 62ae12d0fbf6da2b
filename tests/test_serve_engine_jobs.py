"""`--frontends`: a front end batches first, joining the requests that wait for its jobs into one multi-row job.

Against an in-process engine, through the front end's `EngineBackend` (no HTTP): concurrent requests of different row
counts come back as the model answers each one alone, in fewer jobs than requests; requests of other sizes (a
dynamic sequence dim) go in jobs of their own; a model that raises answers every request of its job with the error;
jobs that travel inline (no slot fits) are joined and split the same way. The messages round-trip through `wire`.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil

import pytest
import torch

import pt2kit
from serve_support import export  # noqa: E402

from pt2kit.serve import ModelService, load_services
from pt2kit.serve.engine import Engine, socket_dir
from pt2kit.serve.engine_client import JOBS_IN_FLIGHT, EngineBackend, connect_engine
from pt2kit.serve.metrics import ServeMetrics
from pt2kit.serve.protocol import InferRequest, RequestError
from pt2kit.serve.wire import JOB, PICKLE, REPLY, Job, Reply, TensorRef, decode, frame, split_frames


class RaisingService(ModelService):
    """A real model that raises when any row's first value is 13."""

    def run(self, tensors, checked=False):
        if bool((tensors["input"][:, 0] == 13).any()):
            raise RuntimeError("boom: the model hit a bad value")
        return super().run(tensors, checked)


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-jobs")
    return {"linear": export("linear_relu", folder / "linear.pt2", "input:0=batch[1,64]"),
            "pair": export("two_inputs_dict_out", folder / "pair.pt2", "x:0=batch[1,64],x:1=seq[2,16],mask:0=batch,mask:1=seq")}


@contextlib.contextmanager
def engine(services, slot_bytes=None):
    directory = socket_dir()
    running = Engine(services, f"{directory}/engine.sock")
    running.start()
    link = connect_engine(running.socket_path, slot_bytes)
    try:
        yield link, EngineBackend(link, ServeMetrics([m.name for m in link.models]))
    finally:
        running.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def infer_all(backend, model, requests, then=()):
    """Every request at once (results or errors), then the `then` requests."""
    await backend.start()
    try:
        results = await asyncio.gather(*(backend.infer(model, r) for r in requests), return_exceptions=True)
        return results + [await backend.infer(model, r) for r in then]
    finally:
        await backend.stop()


def test_requests_that_wait_go_as_one_job_and_come_back_split(programs):
    reference = pt2kit.load(programs["linear"])
    with engine(load_services([programs["linear"]], max_batch_size=64)) as (link, backend):
        xs = [torch.randn(rows, 16) for rows in (1, 2, 3, 1, 4, 1, 2, 3, 1, 1)]
        results = asyncio.run(infer_all(backend, link.models[0], [InferRequest("", {"input": x}, batch=len(x)) for x in xs]))
        jobs = next(backend.ids)
    for x, outputs in zip(xs, results):
        torch.testing.assert_close(outputs["output"], reference(x))
    # the first JOBS_IN_FLIGHT requests go at once, alone; the rest waited for a reply and went together
    assert JOBS_IN_FLIGHT < jobs < len(xs)
    stats = backend.metrics.stats["linear"].to_json()
    assert stats["inference_count"] == sum(len(x) for x in xs) and stats["execution_count"] <= jobs


def test_requests_of_other_sizes_go_in_jobs_of_their_own(programs):
    reference = pt2kit.load(programs["pair"])
    with engine(load_services([programs["pair"]], max_batch_size=8)) as (link, backend):
        shapes = [(1, 3), (2, 5), (1, 3), (2, 5), (3, 3), (1, 7), (2, 3), (1, 5)]
        inputs = [{"x": torch.randn(b, s, 6), "mask": torch.ones(b, s)} for b, s in shapes]
        results = asyncio.run(infer_all(backend, link.models[0], [InferRequest("", x, batch=len(x["x"])) for x in inputs]))
    for x, outputs in zip(inputs, results):
        expected = reference(x["x"], x["mask"], scale=2.0)
        torch.testing.assert_close(outputs["output['hidden']"], expected["hidden"])
        torch.testing.assert_close(outputs["output['pair'][1]"], expected["pair"][1])


@pytest.mark.parametrize("slot_bytes", [None, 64], ids=["in-slots", "inline"])
def test_a_model_that_raises_answers_every_request_of_its_job(programs, slot_bytes):
    raising = RaisingService("raising", pt2kit.load(programs["linear"]), max_batch_size=64)
    with engine([raising], slot_bytes) as (link, backend):
        good = [torch.zeros(1, 16) for _ in range(JOBS_IN_FLIGHT)]  # these go at once, alone
        joined = [torch.full((1, 16), 13.0)] + [torch.zeros(2, 16) for _ in range(5)]  # these wait, then go as one job
        requests = [InferRequest("", {"input": x}, batch=len(x)) for x in good + joined]
        *results, again = asyncio.run(infer_all(backend, link.models[0], requests,
                                                then=[InferRequest("", {"input": torch.ones(3, 16)}, batch=3)]))
        jobs = next(backend.ids)
    assert jobs == JOBS_IN_FLIGHT + 2
    for outcome in results[JOBS_IN_FLIGHT:]:
        assert isinstance(outcome, RequestError) and outcome.status == 500 and "boom: the model hit a bad value" in str(outcome)
    assert again["output"].shape == (3, 4)  # the engine goes on


def test_inline_jobs_are_joined_and_split_like_slotted_ones(programs):
    reference = pt2kit.load(programs["linear"])
    with engine(load_services([programs["linear"]], max_batch_size=64), slot_bytes=64) as (link, backend):
        xs = [torch.randn(rows, 16) for rows in (2, 1, 3, 1, 2, 1)]
        results = asyncio.run(infer_all(backend, link.models[0], [InferRequest("", {"input": x}, batch=len(x)) for x in xs]))
        assert link.arena.used == bytearray(link.arena.slots)  # nothing took a slot, nothing is left taken
    for x, outputs in zip(xs, results):
        torch.testing.assert_close(outputs["output"], reference(x))


def test_messages_round_trip_packed_or_pickled():
    refs = (TensorRef("pixel_values", torch.bfloat16, (3, 3, 224, 224), 4096), TensorRef("mask", torch.bool, (3, 7), 0))
    messages = [Job(7, "resnet", 3, 12, refs, requests=2, slots=3), Reply(7, refs, queue_ns=5, batch=(64, 9, (1, 2, 3)), first=True),
                Job(8, "resnet", 1, None, tensors={"x": torch.ones(1, 2)}), Reply(8, error="boom", error_status=500)]
    frames = [frame(m) for m in messages]
    assert [f[4] for f in frames] == [JOB, REPLY, PICKLE, PICKLE]  # the kind byte: packed on the hot path
    buffer = bytearray(b"".join(frames) + frames[0][:9])  # a partial frame stays in the buffer
    decoded = split_frames(buffer)
    assert len(buffer) == 9
    assert decoded[:2] == messages[:2] and decoded[3] == messages[3]
    assert torch.equal(decoded[2].tensors["x"], messages[2].tensors["x"]) and decoded[2].slot is None
    assert decode(0, frame(Job(1, "m", 1, 0, (TensorRef("x", torch.float8_e4m3fn, (1,), 0),)))[5:]).refs[0].dtype == torch.float8_e4m3fn


def test_an_http_response_is_one_socket_write():
    """uvicorn writes a response's head and body apart; `OneWriteHttpTools` sends them as one write (a large body with
    its head in one `writelines`)."""
    import threading
    import time

    import httpx
    import uvicorn

    from pt2kit.serve import http_write
    from serve_support import free_port

    writes = []

    class Counting:
        def __init__(self, transport):
            self.transport = transport

        def write(self, data):
            writes.append(bytes(data))
            self.transport.write(data)

        def writelines(self, chunks):
            writes.append(b"".join(chunks))
            self.transport.writelines(chunks)

        def __getattr__(self, name):
            return getattr(self.transport, name)

    class CountingProtocol(http_write.OneWriteHttpTools):
        def connection_made(self, transport):
            super().connection_made(Counting(transport))

    async def app(scope, receive, send):
        if scope["type"] == "http":
            body, more = b"", True
            while more:
                message = await receive()
                body, more = body + message.get("body", b""), message.get("more_body", False)
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body) + 2).encode())]})
            await send({"type": "http.response.body", "body": b"ok" + body})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", http=CountingProtocol, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        with httpx.Client() as client:
            answers = [client.post(f"http://127.0.0.1:{port}/", content=b"x" * n) for n in (0, 10, 100_000)]
    finally:
        server.should_exit = True
        thread.join(10)
    assert [a.content for a in answers] == [b"ok", b"ok" + b"x" * 10, b"ok" + b"x" * 100_000]
    assert len(writes) == 3 and all(w.startswith(b"HTTP/1.1 200 OK\r\n") and w.endswith(a.content) for w, a in zip(writes, answers))
