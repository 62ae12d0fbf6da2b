"""The inputs `pt2kit verify` runs: the example, then random inputs across each dynamic dim's range.

Sizes: every root symbol of the inputs' shapes (a dim the manifest names, shared dims being one symbol) is
sampled within its range; derived dims (`2*s0`, `s0 + 1`) are computed from their roots. Sample 1 puts every
dim at its minimum, sample 2 at its maximum, samples 3 and 4 (with two or more dims) mix minima and maxima, and
the rest draw each size log-uniformly between. A maximum that is unbounded or above `HUGE_SIZE` is capped (see
`tested_max`), and `max_size` caps every dim.

Values: integers come from the range the user gave (`--input ids=int64[2,128]@0..30000`), else the range the
manifest recorded at export, else the example's own values `[min, max]`; floats are normal with the example's
mean and standard deviation (uniform when a range was given); booleans are true as often as in the example.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping

import torch
from torch.utils import _pytree as pytree

from pt2kit.errors import InputMismatchError
from pt2kit.target.inputs import dtype_name
from pt2kit.artifact.manifest import DimRange, LeafSpec, Manifest, leaf_name
from pt2kit.artifact.size_expr import SizeExpr, parse_size

HUGE_SIZE = 4096  # a declared maximum above this (or none) is capped: see `tested_max`
UNBOUNDED_FLOOR = 64  # ... at max(UNBOUNDED_FLOOR, 2 x the example's size), never above HUGE_SIZE


class Distribution(str, Enum):
    NORMAL = "normal"
    UNIFORM = "uniform"
    INTEGERS = "integers"
    BERNOULLI = "bernoulli"
    EXAMPLE = "example"  # not a tensor, or nothing to draw: the example's value is reused


@dataclass(frozen=True)
class InputDraw:
    """How one input's random values are drawn, and where that choice came from (`--input`, manifest, example)."""

    name: str
    dtype: str | None
    distribution: Distribution
    low: float | None = None  # uniform / integers: [low, high)
    high: float | None = None
    mean: float | None = None  # normal
    std: float | None = None
    p: float | None = None  # bernoulli
    source: str = "the example"

    def __str__(self) -> str:
        d = self.distribution
        if d is Distribution.NORMAL:
            how = f"normal(mean {self.mean:.3g}, std {self.std:.3g})"
        elif d in (Distribution.UNIFORM, Distribution.INTEGERS):
            how = f"{'integers' if d is Distribution.INTEGERS else 'uniform'} in [{self.low:g}, {self.high:g})"
        elif d is Distribution.BERNOULLI:
            how = f"true with p={self.p:.3g}"
        else:
            return f"{self.name}: not a tensor, the example's value on every input (export fixed it)"
        return f"{self.name}: {self.dtype} {how} (from {self.source})"

    def to_json(self) -> dict:
        return {k: (v.value if isinstance(v, Enum) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class DimPlan:
    """One dynamic dim as verified: its declared range and the largest size tested."""

    symbol: str
    name: str
    min: int
    max: int | None
    tested_max: int

    @property
    def capped(self) -> bool:
        return self.max is None or self.tested_max < self.max

    def __str__(self) -> str:
        declared = f"{self.name} in [{self.min}, {'inf' if self.max is None else self.max}]"
        return declared + (f" (tested up to {self.tested_max}: capped)" if self.capped else "")

    def to_json(self) -> dict:
        return {**self.__dict__, "capped": self.capped}


@dataclass(frozen=True)
class VerifyCase:
    """One input set: a label, the size of each dynamic dim, and the input leaves (in manifest order)."""

    label: str
    sizes: tuple[tuple[str, int], ...]
    leaves: tuple[Any, ...] = field(repr=False, compare=False)

    def __str__(self) -> str:
        return self.label + (f" ({', '.join(f'{n}={s}' for n, s in self.sizes)})" if self.sizes else "")

    def to_json(self) -> dict:
        return {"label": self.label, "sizes": dict(self.sizes)}


@dataclass(frozen=True)
class CasePlan:
    """Every case to run, with the dims and value draws they were sampled from."""

    names: tuple[str, ...]
    dims: tuple[DimPlan, ...]
    draws: tuple[InputDraw, ...]
    cases: tuple[VerifyCase, ...]


def max_tested_size(dim: DimRange, example_size: int | None, max_size: int | None = None) -> int:
    """The largest size verification uses for `dim`: its maximum, unless that is unbounded or above
    `HUGE_SIZE`, where it is max(64, 2 x the example's size) capped at `HUGE_SIZE`; never above `max_size`."""
    high = dim.max
    if high is None or high > HUGE_SIZE:
        high = min(HUGE_SIZE, max(UNBOUNDED_FLOOR, 2 * (example_size or 0)))
    if max_size is not None:
        high = min(high, max_size)
    return max(dim.min, high)


def plan_cases(
    manifest: Manifest | None,
    names: list[str],
    example_leaves: list[Any],
    *,
    samples: int = 8,
    seed: int = 0,
    value_ranges: Mapping[str, tuple[float, float]] | None = None,
    max_size: int | None = None,
) -> CasePlan:
    """The example case plus `samples` random ones, at sizes across every dynamic dim's range.

    Args:
        manifest: the artifact's manifest (None: random values at the example's shapes only).
        names: the name of each input leaf, in order (`x`, `mask`, `pair[0]`).
        example_leaves: the example input leaves, in the same order.
        value_ranges: input name -> [low, high) given by the user; overrides the manifest's `value_range`.
        max_size: no dynamic dim is tested above this size.

    Raises:
        InputMismatchError: the example does not fit the manifest's inputs.
    """
    specs = list(manifest.inputs) if manifest is not None else [None] * len(example_leaves)
    if manifest is not None and [s.name for s in specs] != list(names):
        raise InputMismatchError(
            f"the target takes inputs ({', '.join(names)}) but the artifact takes ({', '.join(s.name for s in specs)}); "
            "verify the artifact against the target it was exported from"
        )
    shapes = [_shape_exprs(spec, leaf) for spec, leaf in zip(specs, example_leaves)]
    example_sizes = _example_bindings(shapes, example_leaves)
    ranges = {d.symbol: d for d in manifest.dims} if manifest is not None else {}
    roots = sorted({s for shape in shapes for e in shape if isinstance(e, SizeExpr) for s in e.symbols})
    dims = []
    for sym in roots:
        declared = ranges.get(sym) or DimRange(sym, sym, 0 if example_sizes.get(sym) == 0 else 2, None)
        dims.append(DimPlan(sym, declared.name, declared.min, declared.max, max_tested_size(declared, example_sizes.get(sym), max_size)))
    draws = tuple(_draw_for(name, spec, leaf, (value_ranges or {}).get(name)) for name, spec, leaf in zip(names, specs, example_leaves))

    by_symbol = {d.symbol: d for d in dims}
    cases = [VerifyCase("example", _named_sizes(example_sizes, by_symbol), tuple(example_leaves))]
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    for i in range(samples):
        bindings = _sizes_for(i, dims, rng)
        leaves = tuple(
            _draw_tensor(draw, _concrete(shape, bindings), generator) if draw.distribution is not Distribution.EXAMPLE else leaf
            for draw, shape, leaf in zip(draws, shapes, example_leaves)
        )
        label = {0: "min sizes", 1: "max sizes"}.get(i, f"random {i + 1}") if dims else f"random {i + 1}"
        cases.append(VerifyCase(label, _named_sizes(bindings, by_symbol), leaves))
    return CasePlan(tuple(names), tuple(dims), draws, tuple(cases))


def _shape_exprs(spec: LeafSpec | None, leaf: Any) -> tuple:
    """Each dim of a tensor leaf as an int (static) or a `SizeExpr` over the manifest's symbols (checked grammar)."""
    if not isinstance(leaf, torch.Tensor):
        return ()
    if spec is None or spec.kind != "tensor":
        return tuple(leaf.shape)
    if len(spec.shape) != leaf.dim():
        raise InputMismatchError(
            f"input `{spec.name}` of the target has {leaf.dim()} dims {list(leaf.shape)}, the artifact expects "
            f"[{', '.join(map(str, spec.shape))}]; verify the artifact against the target it was exported from"
        )
    out = []
    for size in spec.shape:
        if isinstance(size, int):
            out.append(size)
            continue
        out.append(parse_size(size, f"input `{spec.name}`'s shape"))
    return tuple(out)


def _example_bindings(shapes: list[tuple], leaves: list[Any]) -> dict[str, int]:
    bindings: dict[str, int] = {}
    for shape, leaf in zip(shapes, leaves):
        for expr, size in zip(shape, getattr(leaf, "shape", ())):
            if isinstance(expr, SizeExpr) and expr.symbol is not None:
                bindings.setdefault(expr.symbol, int(size))
    return bindings


def _named_sizes(bindings: Mapping[str, int], dims: Mapping[str, DimPlan]) -> tuple[tuple[str, int], ...]:
    return tuple((dims[s].name if s in dims else s, int(v)) for s, v in sorted(bindings.items()) if s in dims)


def _sizes_for(i: int, dims: list[DimPlan], rng: random.Random) -> dict[str, int]:
    """Sample i: 0 all minima, 1 all maxima, 2 and 3 alternate them (several dims), then log-uniform."""
    if i == 0:
        return {d.symbol: d.min for d in dims}
    if i == 1:
        return {d.symbol: d.tested_max for d in dims}
    if i in (2, 3) and len(dims) >= 2:
        return {d.symbol: (d.min, d.tested_max)[(k + i) % 2] for k, d in enumerate(dims)}
    out = {}
    for d in dims:
        lo, hi = math.log(d.min + 1), math.log(d.tested_max + 1)
        out[d.symbol] = min(d.tested_max, max(d.min, int(round(math.exp(rng.uniform(lo, hi)) - 1))))
    return out


def _concrete(shape: tuple, bindings: Mapping[str, int]) -> tuple[int, ...] | None:
    out = []
    for expr in shape:
        value = expr.evaluate(bindings) if isinstance(expr, SizeExpr) else expr
        if value is None:
            return None
        out.append(int(value))
    return tuple(out)


def _draw_for(name: str, spec: LeafSpec | None, leaf: Any, given: tuple[float, float] | None) -> InputDraw:
    if not isinstance(leaf, torch.Tensor):
        return InputDraw(name, None, Distribution.EXAMPLE)
    dtype = dtype_name(leaf.dtype)
    declared = tuple(given) if given is not None else getattr(spec, "value_range", None)
    source = "--input" if given is not None else "the manifest"
    if leaf.dtype == torch.bool:
        p = leaf.float().mean().item() if leaf.numel() else 0.5
        return InputDraw(name, dtype, Distribution.BERNOULLI, p=p)
    if leaf.dtype.is_floating_point or leaf.dtype.is_complex:
        if declared is not None:
            return InputDraw(name, dtype, Distribution.UNIFORM, low=float(declared[0]), high=float(declared[1]), source=source)
        values = leaf.detach().cpu().double()
        values = values[torch.isfinite(values)] if not leaf.dtype.is_complex else values.abs().flatten()
        mean = values.mean().item() if values.numel() else 0.0
        std = values.std().item() if values.numel() > 1 else 1.0
        return InputDraw(name, dtype, Distribution.NORMAL, mean=mean, std=std)
    if declared is not None:
        return InputDraw(name, dtype, Distribution.INTEGERS, low=int(declared[0]), high=int(declared[1]), source=source)
    if leaf.numel() == 0:
        return InputDraw(name, dtype, Distribution.INTEGERS, low=0, high=1, source="the example (empty: zeros)")
    return InputDraw(name, dtype, Distribution.INTEGERS, low=int(leaf.min()), high=int(leaf.max()) + 1, source="the example's values")


def _draw_tensor(draw: InputDraw, shape: tuple[int, ...] | None, generator: torch.Generator) -> torch.Tensor:
    if shape is None:
        raise InputMismatchError(f"cannot compute a shape for input `{draw.name}` from the manifest; verify with --samples 0")
    dtype = getattr(torch, draw.dtype)
    if draw.distribution is Distribution.BERNOULLI:
        return torch.rand(shape, generator=generator) < draw.p
    if draw.distribution is Distribution.UNIFORM:
        return (torch.rand(shape, generator=generator, dtype=torch.float64) * (draw.high - draw.low) + draw.low).to(dtype)
    if draw.distribution is Distribution.NORMAL:
        return (torch.randn(shape, generator=generator, dtype=torch.float64) * draw.std + draw.mean).to(dtype)
    return torch.randint(int(draw.low), int(draw.high), shape, generator=generator, dtype=dtype)


def leaves_and_names(args: tuple, kwargs: dict, parameters: list[str]) -> tuple[list[Any], list[str], Any]:
    """Flatten `(args, kwargs)` to leaves, their manifest-style names, and the spec to rebuild them."""
    flat, spec = pytree.tree_flatten_with_path((tuple(args), dict(kwargs)))
    return [v for _, v in flat], [leaf_name(p, parameters) for p, _ in flat], spec
