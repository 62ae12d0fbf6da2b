"""Check run-time inputs against a manifest before they reach the program.

Every check names the input, the dim, the size given and what the manifest allows,
so a wrong input is a one-line error instead of a guard failure deep in torch.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch.utils import _pytree as pytree

from pt2kit.errors import InputMismatchError
from pt2kit.target.inputs import dtype_name
from pt2kit.artifact.manifest import DimRange, LeafSpec, Manifest
from pt2kit.artifact.size_expr import parse_size_cached


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

    Shared dims (one symbol in several inputs) must agree; derived dims (`2*seq`) must equal
    their expression, and a derived dim whose root appears nowhere else (`2*half`) must be a
    size the expression can take within the root's range.

    Raises:
        InputMismatchError: the first input that breaks the contract, named with its dim and range.
    """
    if len(leaves) != len(manifest.inputs):
        raise InputMismatchError(f"got {len(leaves)} inputs, the artifact takes {len(manifest.inputs)}: {', '.join(s.name for s in manifest.inputs)}")
    dims = {d.symbol: d for d in manifest.dims}
    bindings: dict[str, tuple[int, str]] = {}  # symbol -> (size, where it was read)
    derived: list[tuple[LeafSpec, int, str, int]] = []
    for spec, value in zip(manifest.inputs, leaves):
        if spec.kind == "constant":
            if value != spec.value:
                raise InputMismatchError(f"input `{spec.name}` was fixed to {spec.value!r} at export, got {value!r}; export again with the value you need")
            continue
        if not isinstance(value, torch.Tensor):
            raise InputMismatchError(f"input `{spec.name}` must be a tensor ({manifest.describe(spec).split(': ', 1)[-1]}), got {type(value).__name__}")
        if dtype_name(value.dtype) != spec.dtype:
            raise InputMismatchError(f"input `{spec.name}` has dtype {dtype_name(value.dtype)}, expected {spec.dtype}; convert it with .to(torch.{spec.dtype})")
        if value.dim() != len(spec.shape):
            raise InputMismatchError(f"input `{spec.name}` has {value.dim()} dims {list(value.shape)}, expected {len(spec.shape)}: {manifest.describe(spec).split(': ', 1)[-1]}")
        for d, (want, got) in enumerate(zip(spec.shape, value.shape)):
            got = int(got)
            if isinstance(want, int):
                if got != want:
                    raise InputMismatchError(
                        f"input `{spec.name}` dim {d} has size {got}, expected {want} (static); "
                        f"re-export with `--dynamic {spec.name}:{d}=NAME` to make it dynamic"
                    )
            elif want in dims:
                _check_range(spec.name, d, got, dims[want])
                if want in bindings and bindings[want][0] != got:
                    size, where = bindings[want]
                    raise InputMismatchError(
                        f"input `{spec.name}` dim {d} has size {got}, but `{dims[want].name}` is {size} (from {where}); "
                        "the two must be equal"
                    )
                bindings.setdefault(want, (got, f"input `{spec.name}` dim {d}"))
            else:
                derived.append((spec, d, want, got))
    _check_derived(derived, dims, bindings)


def _check_range(name: str, d: int, got: int, rng: DimRange) -> None:
    if got < rng.min or (rng.max is not None and got > rng.max):
        high = "inf" if rng.max is None else rng.max
        wider = f"{min(rng.min, got)},{max(rng.max or got, got)}"
        raise InputMismatchError(
            f"input `{name}` dim {d} has size {got}, outside the range of `{rng.name}` [{rng.min}, {high}]; "
            f"pass a size in range or re-export with a wider range, e.g. `--dynamic {name}:{d}={rng.name}[{wider}]`"
        )


def _named(expr: str, dims: dict[str, DimRange]) -> str:
    return re.sub(r"[A-Za-z_]\w*", lambda m: dims[m.group()].name if m.group() in dims else m.group(), expr)


def _check_derived(derived: list[tuple[LeafSpec, int, str, int]], dims: dict[str, DimRange], bindings: dict[str, tuple[int, str]]) -> None:
    """Check derived dims; an affine one with a single unknown root binds that root (solved from the size).

    Expressions are read with pt2kit's checked size grammar (`pt2kit.artifact.size_expr`), never evaluated
    as Python and without sympy, so loading and calling an artifact never pays for importing it.
    """
    pending = list(derived)
    while pending:
        progressed, rest = False, []
        for spec, d, expr, got in pending:
            parsed = parse_size_cached(expr)
            known = {k: v for k, (v, _) in bindings.items()}
            unknown = [s for s in parsed.symbols if s not in bindings]
            named = _named(expr, dims)
            if not unknown:
                expected = parsed.evaluate(known)
                if expected != got:
                    where = ", ".join(f"`{dims[s].name if s in dims else s}` = {bindings[s][0]} from {bindings[s][1]}" for s in parsed.symbols)
                    raise InputMismatchError(
                        f"input `{spec.name}` dim {d} has size {got}, but the artifact needs {named} = {expected} here ({where})"
                    )
                progressed = True
                continue
            affine = parsed.affine(known) if len(unknown) == 1 and unknown[0] in dims else None
            scale = affine[0].get(unknown[0], 0) if affine else 0
            if not scale:
                rest.append((spec, d, expr, got))
                continue
            offset, root = affine[1], dims[unknown[0]]
            root_value, remainder = divmod(got - offset, scale)
            high = "inf" if root.max is None else root.max
            if remainder or not (root.min <= root_value and (root.max is None or root_value <= root.max)):
                lowest = scale * root.min + offset
                highest = "inf" if root.max is None else scale * root.max + offset
                step = f" in steps of {scale}" if scale != 1 else ""
                raise InputMismatchError(
                    f"input `{spec.name}` dim {d} has size {got}, but it must be {named} with `{root.name}` in [{root.min}, {high}], "
                    f"i.e. a size from {lowest} to {highest}{step}"
                )
            bindings[root.symbol] = (root_value, f"input `{spec.name}` dim {d} (= {named})")
            progressed = True
        if not progressed:
            break
        pending = rest


def flatten_inputs(args: tuple, kwargs: dict) -> list[Any]:
    """The leaves of `(args, kwargs)` in the order the manifest lists inputs."""
    return pytree.tree_leaves((tuple(args), dict(kwargs)))


def check_devices(leaves: list[Any], names: list[str], device: torch.device) -> None:
    """Raise `InputMismatchError` for the first tensor input that is not on `device`.

    An AOTInductor package reads its inputs' memory on the device it was built for: a CPU
    tensor passed to a CUDA package crashes inside its C++ code rather than raising.
    """
    for name, value in zip(names, leaves):
        if isinstance(value, torch.Tensor) and not _same_device(value.device, device):
            raise InputMismatchError(
                f"input `{name}` is on {value.device}, but the artifact runs on {device}; move it there first: `{name}.to('{device}')`"
            )


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)
