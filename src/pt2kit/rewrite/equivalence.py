"""Prove a rewrite before trusting it: the rewritten model (and the program captured from it) must give
the original model's values on the example inputs, on random inputs at several scales, and, for
dynamic dims, on sizes across each declared range."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils import _pytree as pytree

from pt2kit.target.inputs import random_tensor
from pt2kit.shapes.spec import DynamicSpec

_SCALES = (1.0, 0.01, 100.0)
AUTO_LABEL = "auto dim "  # input sets at sizes only the eager models must accept
_SHIFTS = (3.0, -3.0)


@dataclass(frozen=True)
class EquivalenceCheck:
    """How the rewritten model compared with the original.

    Attributes:
        inputs: input sets compared (those the original model accepts).
        max_abs_diff: the largest absolute difference seen.
        mismatches: one line per input set that disagreed.
    """

    inputs: int
    max_abs_diff: float
    mismatches: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.inputs > 0

    def merge(self, other: "EquivalenceCheck") -> "EquivalenceCheck":
        """Both checks as one: the input sets of the larger, every mismatch of both."""
        return EquivalenceCheck(max(self.inputs, other.inputs), max(self.max_abs_diff, other.max_abs_diff),
                                self.mismatches + other.mismatches)

    def __str__(self) -> str:
        if self.ok:
            return f"equivalent to the original on {self.inputs} input sets (max abs diff {self.max_abs_diff:.2e})"
        return f"NOT equivalent on {len(self.mismatches)} of {self.inputs} input sets: " + "; ".join(self.mismatches[:3])

    def to_json(self) -> dict:
        return {"ok": self.ok, "inputs": self.inputs, "max_abs_diff": self.max_abs_diff, "mismatches": list(self.mismatches)}


def probe_inputs(args: tuple, kwargs: dict, param_names: list[str], spec: DynamicSpec | None, seed: int = 0) -> list[tuple[str, tuple, dict]]:
    """(label, args, kwargs) to compare on: the example, random values at several scales and shifts,
    and random values at sizes across each dynamic dim's range."""
    gen = torch.Generator().manual_seed(seed)
    sets = [("example", args, kwargs)]

    def remake(value, transform, sizes=None):
        if not isinstance(value, torch.Tensor):
            return value
        shape = list(value.shape) if sizes is None else sizes
        if value.dtype.is_floating_point:
            return transform(random_tensor(value.dtype, shape, generator=gen).float()).to(value.dtype)
        if value.dtype == torch.bool:
            return random_tensor(torch.bool, shape, generator=gen)
        if value.numel() == 0:
            return random_tensor(value.dtype, shape, 0, 2, generator=gen)
        low, high = int(value.min()), int(value.max()) + 1
        return random_tensor(value.dtype, shape, low, max(high, low + 1), generator=gen)

    def variant(label, transform, shapes=None):
        names = list(param_names) + [f"*args[{i}]" for i in range(len(param_names), len(args))]
        new_args = tuple(remake(v, transform, (shapes or {}).get(name)) for name, v in zip(names, args))
        new_kwargs = {k: remake(v, transform, (shapes or {}).get(k)) for k, v in kwargs.items()}
        sets.append((label, new_args, new_kwargs))

    for scale in _SCALES:
        variant(f"random x{scale:g}", lambda t, s=scale: t * s)
    for shift in _SHIFTS:
        variant(f"random {shift:+g}", lambda t, s=shift: t.abs() + s if s > 0 else -t.abs() + s)
    for label, shapes in _dynamic_shapes(args, kwargs, param_names, spec):
        variant(label, lambda t: t, shapes)
        variant(label + " x100", lambda t: t * 100, shapes)
    return sets


def _dynamic_shapes(args, kwargs, param_names, spec: DynamicSpec | None) -> list[tuple[str, dict[str, list[int]]]]:
    if not spec or spec.all_auto:
        return []
    values = dict(zip(param_names, args), **kwargs)
    roots = spec.roots()
    found = []
    for e in spec.entries:  # a dim torch decides (`auto`): a smaller and a larger size than the example's
        value = values.get(e.input)
        if e.is_auto and isinstance(value, torch.Tensor) and e.dim < value.dim():
            for size in sorted({max(2, value.shape[e.dim] // 3), value.shape[e.dim] * 2}):
                shape = list(value.shape)
                shape[e.dim] = size
                found.append((f"{AUTO_LABEL}{e.input}.shape[{e.dim}]={size}", {e.input: shape}))
    for name, (low, high) in roots.items():
        example = next((values[e.input].shape[e.dim] for e in spec.entries if e.name == name and not e.is_derived
                        and isinstance(values.get(e.input), torch.Tensor)), None)
        if example is None:
            continue
        low = low if low is not None else 2
        high = high if high is not None else max(2 * example, low)
        for size in sorted({low, high, (low + high) // 2}):
            shapes: dict[str, list[int]] = {}
            for e in spec.entries:
                if e.name == name and isinstance(values.get(e.input), torch.Tensor):
                    shape = shapes.setdefault(e.input, list(values[e.input].shape))
                    shape[e.dim] = e.size_for(size)
            found.append((f"{name}={size}", shapes))
    return found


def compare(original, candidates: dict[str, Any], inputs: list[tuple[str, tuple, dict]],
            rtol: float = 1e-4, atol: float = 1e-5) -> EquivalenceCheck:
    """Run `original` and every candidate (name -> callable) on each input set; collect every disagreement."""
    compared, worst, problems = 0, 0.0, []
    for label, args, kwargs in inputs:
        try:
            torch.manual_seed(0)  # the same random draws (dropout in training mode) for every model
            with torch.no_grad():
                expected = original(*args, **kwargs)
        except Exception:  # an input the original rejects says nothing about the rewrite
            continue
        compared += 1
        for name, candidate in candidates.items():
            try:
                torch.manual_seed(0)
                with torch.no_grad():
                    got = candidate(*args, **kwargs)
            except Exception as exc:
                problems.append(f"{name} on {label}: raised {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}")
                continue
            diff, why = _difference(expected, got, rtol, atol)
            worst = max(worst, diff if math.isfinite(diff) else worst)
            if why:
                problems.append(f"{name} on {label}: {why}")
    return EquivalenceCheck(compared, worst, tuple(problems))


def _difference(expected, got, rtol, atol) -> tuple[float, str]:
    exp_leaves, exp_spec = pytree.tree_flatten(expected)
    got_leaves, got_spec = pytree.tree_flatten(got)
    if len(exp_leaves) != len(got_leaves):
        return math.inf, f"{len(got_leaves)} outputs instead of {len(exp_leaves)}"
    worst = 0.0
    for i, (a, b) in enumerate(zip(exp_leaves, got_leaves)):
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            if a != b:
                return math.inf, f"output {i} is {b!r}, expected {a!r}"
            continue
        a, b = torch.as_tensor(a), torch.as_tensor(b)
        if a.shape != b.shape:
            return math.inf, f"output {i} has shape {tuple(b.shape)}, expected {tuple(a.shape)}"
        if a.numel() == 0:
            continue
        a64, b64 = a.double(), b.double()
        diff = float((a64 - b64).abs().nan_to_num(0.0).max())
        worst = max(worst, diff)
        if not torch.allclose(a64, b64, rtol=rtol, atol=atol, equal_nan=True):
            return diff, f"output {i} differs by up to {diff:.3g}"
    return worst, ""
