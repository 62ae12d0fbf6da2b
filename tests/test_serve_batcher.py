"""The in-process batcher's choice of thread: a lone request's call runs on the event loop when lone calls are short
(under `PT2KIT_SERVE_LONE_INLINE_MS`, 5 ms), a batch of several whose calls average over 2 ms on the model's thread."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

import pt2kit
from serve_support import export  # noqa: E402

from pt2kit.serve import ModelService
from pt2kit.serve.batcher import DynamicBatcher
from pt2kit.serve.protocol import InferRequest


class SlowService(ModelService):
    """A real model whose call takes 3 ms more, recording the thread it ran on."""

    threads: list[str]

    def run(self, tensors, checked=False):
        self.threads.append(threading.current_thread().name)
        time.sleep(0.003)
        return super().run(tensors, checked)


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    return export("linear_relu", tmp_path_factory.mktemp("serve-batcher") / "linear.pt2", "input:0=batch[1,64]")


def test_a_lone_short_call_runs_on_the_loop_and_a_batch_of_long_calls_on_the_thread(linear):
    service = SlowService("slow", pt2kit.load(linear), max_batch_size=8)
    service.threads = []
    request = InferRequest("", {"input": torch.zeros(1, 16)})

    async def main():
        batcher = DynamicBatcher([service])
        await batcher.start()
        for _ in range(3):  # one at a time: lone
            await batcher.infer(service, request)
        lone = list(service.threads)
        service.threads.clear()
        await asyncio.gather(*(batcher.infer(service, request) for _ in range(6)))  # queued together: one batch
        await batcher.stop()
        return lone, threading.current_thread().name

    lone, loop_thread = asyncio.run(main())
    # the first lone call is measured on the thread; then lone calls average under 5 ms and stay on the loop
    assert lone[0] != loop_thread and lone[1:] == [loop_thread, loop_thread]
    assert service.threads and all(name != loop_thread for name in service.threads)
