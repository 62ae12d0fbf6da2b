"""Check run-time inputs against a manifest before they reach the program.

Every check names the input, the dim, the size given and what the manifest allows,
so a wrong input is a one-line error instead of a guard failure deep in torch.
"""

from __future__ import annotations

from typing import Any

import sympy
import torch
from torch.utils import _pytree as pytree

from pt2kit.errors import InputMismatchError
from pt2kit.inputs import dtype_name
from pt2kit.manifest import LeafSpec, Manifest


def bind_inputs(manifest: Manifest, positional: list[Any], named: dict[str, Any]) -> list[Any]:
    """Order user inputs as the manifest's leaves: positional first, then by name.

    Constants recorded in the manifest are filled in when not given.

    Raises:
        InputMismatchError: an input is missing, unknown, or given twice.
    """
    leaves: list[Any] = []
    pending = list(positional)
    unknown = set(named)
    for spec in manifest.inputs:
        if spec.name in named:
            leaves.append(named[spec.name])
            unknown.discard(spec.name)
        elif pending and spec.kind == "tensor":
            leaves.append(pending.pop(0))
        elif spec.kind == "constant":
            leaves.append(spec.value)
        else:
            expected = ", ".join(s.describe() for s in manifest.inputs if s.kind == "tensor")
            raise InputMismatchError(f"missing input `{spec.name}`; the artifact takes: {expected}; pass `--input {spec.name}=...`")
    if unknown or pending:
        extra = ", ".join(f"`{n}`" for n in sorted(unknown)) or f"{len(pending)} positional"
        names = ", ".join(s.name for s in manifest.inputs)
        raise InputMismatchError(f"unexpected input {extra}; the artifact takes: {names}")
    return leaves


def check_inputs(manifest: Manifest, leaves: list[Any]) -> None:
    """Check each leaf's type, rank, dtype and sizes, and the dynamic dims' ranges and relations.

    Raises:
        InputMismatchError: the first input that breaks the contract, named with its dim and range.
    """
    if len(leaves) != len(manifest.inputs):
        raise InputMismatchError(f"got {len(leaves)} inputs, the artifact takes {len(manifest.inputs)}: {', '.join(s.name for s in manifest.inputs)}")
    dims = {d.symbol: d for d in manifest.dims}
    bindings: dict[str, int] = {}
    derived: list[tuple[LeafSpec, int, str, int]] = []
    for spec, value in zip(manifest.inputs, leaves):
        if spec.kind == "constant":
            if value != spec.value:
                raise InputMismatchError(f"input `{spec.name}` was fixed to {spec.value!r} at export, got {value!r}; export again with the value you need")
            continue
        if not isinstance(value, torch.Tensor):
            raise InputMismatchError(f"input `{spec.name}` must be a tensor ({spec.dtype}[{', '.join(map(str, spec.shape))}]), got {type(value).__name__}")
        if dtype_name(value.dtype) != spec.dtype:
            raise InputMismatchError(f"input `{spec.name}` has dtype {dtype_name(value.dtype)}, expected {spec.dtype}; convert it with .to(torch.{spec.dtype})")
        if value.dim() != len(spec.shape):
            raise InputMismatchError(f"input `{spec.name}` has {value.dim()} dims {list(value.shape)}, expected {len(spec.shape)}: [{', '.join(map(str, spec.shape))}]")
        for d, (want, got) in enumerate(zip(spec.shape, value.shape)):
            if isinstance(want, int):
                if got != want:
                    raise InputMismatchError(
                        f"input `{spec.name}` dim {d} has size {got}, expected {want} (static); "
                        f"re-export with `--dynamic {spec.name}:{d}=NAME` to make it dynamic"
                    )
            elif want in dims:
                rng = dims[want]
                if got < rng.min or (rng.max is not None and got > rng.max):
                    high = "inf" if rng.max is None else rng.max
                    raise InputMismatchError(
                        f"input `{spec.name}` dim {d} has size {got}, outside the range of `{rng.name}` [{rng.min}, {high}]; "
                        f"pass a size in range or re-export with a wider range, e.g. `--dynamic {spec.name}:{d}={rng.name}[{min(rng.min, got)},{max(rng.max or got, got)}]`"
                    )
                if want in bindings and bindings[want] != got:
                    raise InputMismatchError(
                        f"input `{spec.name}` dim {d} has size {got}, but `{rng.name}` is {bindings[want]} in an earlier input; the two must be equal"
                    )
                bindings[want] = got
            else:
                derived.append((spec, d, want, got))
    for spec, d, expr, got in derived:
        try:
            expected = sympy.sympify(expr).subs({sympy.Symbol(k): v for k, v in bindings.items()})
        except (sympy.SympifyError, TypeError):
            continue
        if expected.is_number and int(expected) != got:
            raise InputMismatchError(f"input `{spec.name}` dim {d} has size {got}, but the artifact needs {expr} = {int(expected)} here")


def flatten_inputs(args: tuple, kwargs: dict) -> list[Any]:
    """The leaves of `(args, kwargs)` in the order the manifest lists inputs."""
    return pytree.tree_leaves((tuple(args), dict(kwargs)))
