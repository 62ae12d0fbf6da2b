"""Run the model with forward hooks: each submodule's inputs and its share of the eager time.

The first run records what every submodule was called with (detached copies, a few distinct shapes per
module); further runs only time each module, inclusive of its children, so the copies do not count. On the CPU the
clock is the thread's CPU time on one thread, so other processes on a busy machine do not distort the shares.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

MAX_SHAPES = 4  # distinct input shape signatures kept per module (enough to see which dims vary)


@dataclass
class ModuleCalls:
    """What one submodule was called with during the traced runs.

    Attributes:
        path: its name in the model (`""` for the model itself).
        module: the submodule.
        calls: `(args, kwargs)` of up to `MAX_SHAPES` calls with distinct input shapes.
        count: calls during the recording runs (the example and each sample).
        seconds: time inside the module per run (children included, one CPU thread), the fastest timed run.
    """

    path: str
    module: nn.Module
    calls: list[tuple[tuple, dict]] = field(default_factory=list)
    count: int = 0
    seconds: float = 0.0
    _signatures: set = field(default_factory=set, repr=False)


@dataclass(frozen=True)
class CallTrace:
    """Every submodule that ran, in the order of first call; `total_seconds` is the whole model's time (one thread)."""

    records: dict[str, ModuleCalls]
    total_seconds: float

    def share(self, path: str) -> float:
        record = self.records.get(path)
        return record.seconds / self.total_seconds if record and self.total_seconds > 0 else 0.0


def call_signature(args: tuple, kwargs: dict) -> tuple:
    leaves, spec = pytree.tree_flatten((args, kwargs))
    return (str(spec),) + tuple((tuple(x.shape), x.dtype) if isinstance(x, torch.Tensor) else repr(x) for x in leaves)


def _detached(value: Any) -> Any:
    return pytree.tree_map(lambda x: x.detach().clone() if isinstance(x, torch.Tensor) else x, value)


def _cuda_clock() -> float:
    torch.cuda.synchronize()
    return time.perf_counter()


def trace_calls(model: nn.Module, inputs: list[tuple[tuple, dict]], *, timed_runs: int = 5) -> CallTrace:
    """Run `model` on each input set with hooks on every submodule.

    Args:
        model: the model (put in eval mode by the caller).
        inputs: one or more `(args, kwargs)`: the example first, then any samples.
        timed_runs: runs of the example used for timing; each module keeps its fastest. On the CPU the model runs
            on one thread and the clock is that thread's CPU time; on CUDA, wall time after a synchronize.

    Returns:
        A `CallTrace`; modules that never ran are absent.
    """
    names = {id(m): p for p, m in model.named_modules(remove_duplicate=False)}
    records: dict[str, ModuleCalls] = {}
    recording = [True]
    starts: dict[str, list[float]] = {}
    elapsed: dict[str, float] = {}

    def pre(module, args, kwargs):
        path = names.get(id(module))
        if path is None:
            return
        record = records.setdefault(path, ModuleCalls(path, module))
        if recording[0]:
            record.count += 1
            sig = call_signature(args, kwargs)
            if sig not in record._signatures and len(record.calls) < MAX_SHAPES:
                record._signatures.add(sig)
                record.calls.append((_detached(tuple(args)), _detached(dict(kwargs))))
        starts.setdefault(path, []).append(clock())

    def post(module, args, kwargs, output):
        path = names.get(id(module))
        if path is not None and starts.get(path):
            elapsed[path] = elapsed.get(path, 0.0) + clock() - starts[path].pop()

    cuda = any(isinstance(x, torch.Tensor) and x.is_cuda for call in inputs for x in pytree.tree_leaves(call))
    clock = _cuda_clock if cuda else time.thread_time  # CPU: this thread's CPU time, blind to other processes' load
    threads = torch.get_num_threads()
    handles = []
    for module in {id(m): m for m in model.modules()}.values():
        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(module.register_forward_hook(post, with_kwargs=True))
    try:
        with torch.no_grad():
            for args, kwargs in inputs:
                model(*args, **kwargs)
            recording[0] = False
            args, kwargs = inputs[0]
            best: dict[str, float] = {}
            # one thread, timed by its CPU time: on a busy machine wall time and waiting threads turn a layer's
            # time into noise (seen: one of six identical blocks timed at 260 ms, another at 1 ms); shares are relative
            torch.set_num_threads(1)
            for _ in range(max(1, timed_runs)):
                elapsed.clear()
                model(*args, **kwargs)
                for path, seconds in elapsed.items():
                    best[path] = min(seconds, best.get(path, float("inf")))
    finally:
        torch.set_num_threads(threads)
        for handle in handles:
            handle.remove()
    for path, record in records.items():
        record.seconds = best.get(path, 0.0)
    return CallTrace(records, best.get("", 0.0))
