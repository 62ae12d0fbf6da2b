"""Compare one output leaf of the artifact with the eager model's: tolerances by dtype and device, NaN/inf positions.

An element passes when `|actual - expected| <= atol + rtol * |expected|` (the `torch.isclose` rule). NaN and
infinities must sit at the same positions (with the same sign) on both sides; only finite positions are
compared by value. Integer and boolean outputs must be equal. Default tolerances: `default_tolerance` (the table
in docs/verify.md, measured in benchmarks/coverage/verify_tolerances.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch

from pt2kit.target.inputs import dtype_name


class MismatchKind(str, Enum):
    """Why one output differs on one input."""

    VALUES = "values"  # finite values beyond tolerance (or unequal integers / booleans / constants)
    NAN = "nan"  # NaN at different positions
    INF = "inf"  # +inf / -inf at different positions
    SHAPE = "shape"
    DTYPE = "dtype"
    MISSING = "missing"  # an output one side returns and the other does not

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Tolerance:
    """`atol`, `rtol`, and where they came from (`float32 on cpu`, `--atol/--rtol`)."""

    atol: float
    rtol: float
    basis: str

    def __str__(self) -> str:
        return f"atol {self.atol:g}, rtol {self.rtol:g}"


# (dtype, device kind) -> (atol, rtol). "tf32" is float32 on CUDA with TF32 matmuls or convolutions allowed.
TOLERANCES: dict[tuple[str, str], tuple[float, float]] = {
    ("float64", "cpu"): (1e-8, 1e-7),
    ("float64", "cuda"): (1e-8, 1e-7),
    ("float32", "cpu"): (1e-5, 1e-4),
    ("float32", "cuda"): (5e-5, 5e-4),
    ("float32", "tf32"): (5e-3, 5e-3),
    ("float16", "cpu"): (1e-2, 1e-2),
    ("float16", "cuda"): (1e-2, 1e-2),
    ("bfloat16", "cpu"): (5e-2, 5e-2),
    ("bfloat16", "cuda"): (5e-2, 5e-2),
}
_PRECISION = ["bfloat16", "float16", "float32", "float64"]  # least precise first


def least_precise(dtypes) -> str | None:
    """The least precise floating dtype among `dtypes` (names or torch dtypes), or None if there is none."""
    names = {d if isinstance(d, str) else dtype_name(d) for d in dtypes}
    return next((d for d in _PRECISION if d in names), None)


def default_tolerance(dtype: torch.dtype, compute: str | None, device: str, tf32: bool) -> Tolerance:
    """The default tolerance for an output of `dtype` computed at precision `compute` on `device`.

    Integer and boolean outputs must match exactly. A floating output gets the row of the least precise of its
    own dtype and `compute` (the model's weights and inputs): a bfloat16 model's float32 logits are held to
    bfloat16 tolerances.
    """
    if not (dtype.is_floating_point or dtype.is_complex):
        return Tolerance(0.0, 0.0, f"{dtype_name(dtype)}: exact")
    own = dtype_name(dtype) if dtype.is_floating_point else ("float64" if dtype == torch.complex128 else "float32")
    precision = least_precise([own] + ([compute] if compute else [])) or "float32"
    kind = "cpu" if device == "cpu" else "cuda"
    if precision == "float32" and kind == "cuda" and tf32:
        kind = "tf32"
    atol, rtol = TOLERANCES.get((precision, kind), TOLERANCES[("float32", "cuda")])
    label = "float32 with TF32" if kind == "tf32" else f"{precision} on {kind}"
    return Tolerance(atol, rtol, label)


@dataclass(frozen=True)
class LeafComparison:
    """One output leaf on one input: its errors, how far past the tolerance, and any mismatches."""

    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    ratio: float = 0.0  # max |a - e| / (atol + rtol |e|): above 1 fails
    problems: tuple[tuple[MismatchKind, str], ...] = ()


def _index(flat_index: int, shape: torch.Size) -> list[int]:
    out = []
    for size in reversed(shape):
        out.append(flat_index % size if size else 0)
        flat_index //= size or 1
    return list(reversed(out))


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def compare_leaf(expected: Any, actual: Any, tol: Tolerance, allow_dtype_change: bool = False) -> LeafComparison:
    """Compare one output leaf; every problem is returned, none raised.

    Args:
        allow_dtype_change: the artifact was built in another floating dtype (`--dtype`): compare the values
            in the more precise of the two instead of reporting a dtype mismatch.
    """
    if not isinstance(expected, torch.Tensor) or not isinstance(actual, torch.Tensor):
        if isinstance(expected, torch.Tensor) != isinstance(actual, torch.Tensor) or expected != actual:
            return LeafComparison(problems=((MismatchKind.VALUES, f"expected {_describe(expected)}, got {_describe(actual)}"),))
        return LeafComparison()
    if tuple(expected.shape) != tuple(actual.shape):
        return LeafComparison(problems=((MismatchKind.SHAPE, f"shape {list(actual.shape)}, expected {list(expected.shape)}"),))
    e, a = expected.detach().cpu(), actual.detach().cpu()
    if e.dtype != a.dtype:
        both_float = e.dtype.is_floating_point and a.dtype.is_floating_point
        if not (allow_dtype_change and both_float):
            return LeafComparison(problems=((MismatchKind.DTYPE, f"dtype {dtype_name(a.dtype)}, expected {dtype_name(e.dtype)}"),))
    if e.dtype == torch.bool or a.dtype == torch.bool:
        differ = e != a
        if differ.any():
            first = _index(int(differ.flatten().nonzero()[0]), e.shape)
            return LeafComparison(1.0, 1.0, float("inf"), ((MismatchKind.VALUES, f"{int(differ.sum())} of {e.numel()} booleans differ, first at {first}"),))
        return LeafComparison()
    if e.is_complex() or a.is_complex():
        e, a = torch.view_as_real(e.to(torch.complex128)), torch.view_as_real(a.to(torch.complex128))
    else:
        e, a = e.double(), a.double()
    problems: list[tuple[MismatchKind, str]] = []
    nan_e, nan_a = torch.isnan(e), torch.isnan(a)
    if not torch.equal(nan_e, nan_a):
        only_e, only_a = int((nan_e & ~nan_a).sum()), int((nan_a & ~nan_e).sum())
        first = _index(int((nan_e != nan_a).flatten().nonzero()[0]), e.shape)
        problems.append((MismatchKind.NAN, f"NaN positions differ at {only_e + only_a} elements ({only_a} NaN only in the artifact, "
                                           f"{only_e} only in eager), first at {first}"))
    inf_differ = (torch.isposinf(e) != torch.isposinf(a)) | (torch.isneginf(e) != torch.isneginf(a))
    if inf_differ.any():
        first = _index(int(inf_differ.flatten().nonzero()[0]), e.shape)
        problems.append((MismatchKind.INF, f"inf positions differ at {int(inf_differ.sum())} elements, first at {first}"))
    finite = torch.isfinite(e) & torch.isfinite(a)
    if not finite.any():
        return LeafComparison(problems=tuple(problems))
    diff = torch.where(finite, (a - e).abs(), torch.zeros_like(e))
    scale = e.abs()
    allowed = tol.atol + tol.rtol * scale
    over = diff > allowed
    max_abs = float(diff.max())
    nonzero = finite & (scale > 0)
    max_rel = float((diff[nonzero] / scale[nonzero]).max()) if nonzero.any() else (0.0 if max_abs == 0 else float("inf"))
    ratios = torch.where(allowed > 0, diff / allowed.clamp_min(1e-300), torch.where(diff > 0, torch.inf, 0.0))
    ratio = float(ratios.max())
    if over.any():
        worst = int(ratios.flatten().argmax())
        at = _index(worst, e.shape)
        problems.append((MismatchKind.VALUES,
                         f"{int(over.sum())} of {e.numel()} elements beyond tolerance, worst at {at}: "
                         f"{_fmt(float(a.flatten()[worst]))} vs {_fmt(float(e.flatten()[worst]))} expected"))
    return LeafComparison(max_abs, max_rel, ratio, tuple(problems))


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {dtype_name(value.dtype)} tensor {list(value.shape)}"
    return repr(value)
