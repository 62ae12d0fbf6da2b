"""Verify a candidate against float32 eager, and time the survivors side by side.

The reference is the model in float32 on the tune device, with TF32 off, run once per verification input (a model
whose weights were all made in bf16 or fp16, such as a program exported from one, runs in its own dtypes); each
candidate gets the same inputs (in the model's dtypes, or cast to the candidate's dtype under
`--low-precision-io`) and must match every output element within
`|a - e| <= atol + rtol * |e|` (`pt2kit.verify.compare`), NaN and inf at the same places.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch.utils import _pytree as pytree

from pt2kit.benchmark.timing import Timer, interleaved, percentile
from pt2kit.target.inputs import CAST_DTYPES
from pt2kit.verify.compare import Tolerance, compare_leaf



@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Full float32 matmuls and convolutions for the reference (TF32 would make it the less precise side)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextlib.contextmanager
def num_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def cast_leaves(leaves: list[Any], dtype: str | None, device: str) -> list[Any]:
    """Floating tensors to `dtype` (None: kept as they are), every tensor to `device`."""
    target = CAST_DTYPES[dtype] if dtype is not None else None
    out = []
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor):
            leaf = leaf.to(device)
            if target is not None and leaf.is_floating_point():
                leaf = leaf.to(target)
        out.append(leaf)
    return out


@dataclass(frozen=True)
class Reference:
    """The verification inputs (flat leaves, manifest order) and float32 eager's flat outputs for each."""

    spec: Any  # rebuilds (args, kwargs) from the leaves
    cases: tuple[tuple[str, list[Any]], ...]
    expected: tuple[list[Any], ...]
    note: str | None = None  # why the reference is not float32, when it is not

    @classmethod
    def compute(cls, module: torch.nn.Module, spec: Any, cases: list[tuple[str, list[Any]]], device: str) -> "Reference":
        """float32 eager, or, for a model whose weights were all made in one lower precision, the model as it is.

        A program exported from a bf16 model holds bf16 in its graph (export asserts the dtypes of its casts), so
        casting its weights to float32 cannot give a float32 model; there the reference is the program in its own
        dtypes, and `note` says so.
        """
        made_in = {p.dtype for p in module.parameters() if p.is_floating_point()}
        low = made_in.pop() if made_in in ({torch.bfloat16}, {torch.float16}) else None
        reference = copy.deepcopy(module).to(device=device, dtype=None if low else torch.float32).eval()
        outputs = []
        with torch.no_grad(), no_tf32():
            for _, leaves in cases:
                args, kwargs = pytree.tree_unflatten(cast_leaves(leaves, None if low else "fp32", device), spec)
                outputs.append(pytree.tree_leaves(reference(*args, **kwargs)))
        note = (f"the model's weights are all {str(low).removeprefix('torch.')}: the reference is the model in its own dtypes, "
                "not float32 eager" if low else None)
        return cls(spec, tuple(cases), tuple(outputs), note)


@dataclass(frozen=True)
class Agreement:
    """How close a candidate came to float32 eager: the largest error, and each problem found."""

    max_abs_err: float
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_candidate(call: Callable[..., Any], reference: Reference, dtype: str | None, device: str, atol: float, rtol: float) -> Agreement:
    """Run `call` on every reference input (cast to `dtype`; None: the model's own dtypes) and compare each output
    leaf with eager's."""
    tol = Tolerance(atol, rtol, "pt2kit tune")
    worst = 0.0
    problems: list[str] = []
    with torch.no_grad():
        for (label, leaves), expected in zip(reference.cases, reference.expected):
            args, kwargs = pytree.tree_unflatten(cast_leaves(leaves, dtype, device), reference.spec)
            try:
                actual = pytree.tree_leaves(call(*args, **kwargs))
            except Exception as exc:  # a candidate that raises fails, it does not stop the tune
                problems.append(f"{label}: raised {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
                continue
            if len(actual) != len(expected):
                problems.append(f"{label}: {len(actual)} outputs, eager returns {len(expected)}")
                continue
            for i, (e, a) in enumerate(zip(expected, actual)):
                if isinstance(a, torch.Tensor) and isinstance(e, torch.Tensor) and a.is_floating_point():
                    a = a.float()
                result = compare_leaf(e, a, tol, allow_dtype_change=True)
                worst = max(worst, result.max_abs_err)
                problems += [f"{label}: output {i}: {detail}" for _, detail in result.problems]
    return Agreement(worst, tuple(problems))


def time_calls(calls: dict[str, Callable[[], Any]], device: str, warmup: int, iters: int,
               threads: dict[str, int | None] | None = None, block: int = 5) -> dict[str, tuple[float, float]]:
    """p50 and p90 ms of each call, all timed round-robin in this process (the bench harness's loop).

    Calls that need another CPU thread count (`threads`) are timed in blocks of `block` rounds per count: the count
    is switched outside the timed calls, and each call runs once untimed after a switch, so no call pays for
    resizing the thread pool.
    """
    timer = Timer(device)
    groups: dict[int | None, dict[str, Callable[[], Any]]] = {}
    for name, call in calls.items():
        groups.setdefault((threads or {}).get(name), {})[name] = call
    samples: dict[str, list[float]] = {name: [] for name in calls}
    saved = torch.get_num_threads()
    try:
        with torch.no_grad():
            done = 0
            first = True
            while done < iters:
                rounds = min(block, iters - done) if len(groups) > 1 else iters - done
                for count, group in groups.items():
                    if count is not None:
                        torch.set_num_threads(count)
                    interleaved(timer, group, warmup if first else 1)
                    for name, values in interleaved(timer, group, rounds).items():
                        samples[name] += values
                first = False
                done += rounds
    finally:
        torch.set_num_threads(saved)
    return {name: (percentile(values, 50), percentile(values, 90)) for name, values in samples.items()}
