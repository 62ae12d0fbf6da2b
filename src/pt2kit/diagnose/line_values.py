"""The Python numbers the user's code holds at given lines, seen by running the model eagerly once.

A `torch._check` fix needs the example's value of `k` in `k = n.item()`; torch's message only has
an expression in unbacked symbols (`((u1 + 5)//u1)`). `sys.settrace` reads the frame's locals when
each line is reached; only frames of the user's files are traced, so the cost stays small.
`statement_values` reads, the same way, what a statement takes and produces (a custom-op wrapper of
a NumPy line must declare its inputs' types and return a tensor of the value's dtype and shape).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch

Line = tuple[str, int]


def values_at_lines(module, args: tuple, kwargs: dict, lines: set[Line]) -> dict[Line, dict[str, Any]]:
    """(file, line) -> the int/float/bool locals in scope when that line first runs."""
    if not lines:
        return {}
    files = {f for f, _ in lines}
    found: dict[Line, dict[str, Any]] = {}

    def local_tracer(frame, event, arg):
        key = (frame.f_code.co_filename, frame.f_lineno)
        if event == "line" and key in lines and key not in found:
            found[key] = {k: v for k, v in frame.f_locals.items() if isinstance(v, (bool, int, float))}
        return local_tracer

    _run_traced(module, args, kwargs, files, local_tracer)
    return found


def _run_traced(module, args: tuple, kwargs: dict, files: set[str], local_tracer) -> None:
    """Run the model once eagerly with `local_tracer` on the frames of `files`; best effort: an exception
    ends the run quietly (a fix without the value is still printed)."""

    def tracer(frame, event, arg):
        return local_tracer if frame.f_code.co_filename in files else None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        with torch.no_grad():
            module(*args, **kwargs)
    except Exception:
        pass
    finally:
        sys.settrace(previous)



@dataclass(frozen=True)
class ValueInfo:
    """What one value was in the eager run: `kind` (`tensor`, `ndarray`, `float`, `int`, `bool`, `other`), and
    for the first five the dtype and shape it has as a tensor (`torch.as_tensor`)."""

    kind: str
    dtype: torch.dtype | None = None
    shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class StatementValues:
    """The values a statement read (its free names, as the statement began) and produced, from one eager run."""

    inputs: dict[str, ValueInfo]
    result: ValueInfo | None  # the assigned name's or returned value; None if the statement never finished


def statement_values(module, args: tuple, kwargs: dict,
                     statements: dict[Line, tuple[int, str | None, tuple[str, ...]]]) -> dict[Line, StatementValues]:
    """(file, first line) -> what the statement read and produced the first time it ran.

    `statements` maps (file, first line) to (last line, the name it assigns or None for a `return`, the names it
    reads). Best effort, as `values_at_lines`: a statement that never completes has no `result`."""
    if not statements:
        return {}
    files = {f for f, _ in statements}
    inputs: dict[Line, dict[str, ValueInfo]] = {}
    results: dict[Line, ValueInfo] = {}
    running: dict[int, Line] = {}  # id(frame) -> the statement begun there

    def local_tracer(frame, event, arg):
        key = running.get(id(frame))
        if key is not None:
            last, name, _ = statements[key]
            if event == "return" and name is None:
                results[key] = describe(arg)
                del running[id(frame)]
            elif event == "line" and not key[1] <= frame.f_lineno <= last and name is not None:
                results[key] = describe(frame.f_locals.get(name))
                del running[id(frame)]
        here = (frame.f_code.co_filename, frame.f_lineno)
        if event == "line" and here in statements and here not in inputs:
            inputs[here] = {n: describe(frame.f_locals[n]) for n in statements[here][2] if n in frame.f_locals}
            running[id(frame)] = here
        return local_tracer

    _run_traced(module, args, kwargs, files, local_tracer)
    return {key: StatementValues(seen, results.get(key)) for key, seen in inputs.items()}


def describe(value: Any) -> ValueInfo:
    """A value's kind, and its dtype and shape as a tensor where it has them."""
    if isinstance(value, bool):
        return ValueInfo("bool", torch.bool)
    if isinstance(value, int):
        return ValueInfo("int", torch.int64)
    if isinstance(value, float):  # float64: the tensor holds the Python (or NumPy) float exactly
        return ValueInfo("float", torch.float64)
    if isinstance(value, torch.Tensor):
        return ValueInfo("tensor", value.dtype, tuple(value.shape))
    if type(value).__module__ == "numpy" and hasattr(value, "dtype"):
        try:
            as_tensor = torch.as_tensor(value)
        except (TypeError, RuntimeError):
            return ValueInfo("other")
        return ValueInfo("ndarray", as_tensor.dtype, tuple(as_tensor.shape))
    return ValueInfo("other")


__all__ = ["StatementValues", "ValueInfo", "describe", "statement_values", "values_at_lines"]
