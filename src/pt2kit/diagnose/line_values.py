"""The Python numbers the user's code holds at given lines, seen by running the model eagerly once.

A `torch._check` fix needs the example's value of `k` in `k = n.item()`; torch's message only has
an expression in unbacked symbols (`((u1 + 5)//u1)`). `sys.settrace` reads the frame's locals when
each line is reached; only frames of the user's files are traced, so the cost stays small.
"""

from __future__ import annotations

import sys
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

    def tracer(frame, event, arg):
        return local_tracer if frame.f_code.co_filename in files else None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        with torch.no_grad():
            module(*args, **kwargs)
    except Exception:  # best effort: a fix without the value is still printed
        pass
    finally:
        sys.settrace(previous)
    return found


__all__ = ["values_at_lines"]
