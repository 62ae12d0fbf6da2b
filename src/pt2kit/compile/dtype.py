"""`--dtype`: convert a program's floating weights and inputs, then export it again.

The program is turned back into a module (`ExportedProgram.module()`), its floating
parameters and buffers are cast with `Module.to(dtype)`, the floating example inputs are
cast the same way, and the module is exported again with the same dynamic dims (same
names and ranges). Integer and boolean tensors are left alone. Dtypes written inside the
graph itself (`torch.full(..., dtype=torch.float32)`) are kept: such ops compute in fp32.
"""

from __future__ import annotations

import inspect
from enum import Enum

import sympy
import torch
from torch.utils import _pytree as pytree

from pt2kit.errors import UsageError
from pt2kit.artifact.manifest import Manifest, build_manifest
from pt2kit.capture.capture import export_module


class DType(str, Enum):
    """The floating dtypes `--dtype` accepts."""

    BF16 = "bf16"
    FP16 = "fp16"
    FP32 = "fp32"

    def __str__(self) -> str:
        return self.value

    @property
    def torch_dtype(self) -> torch.dtype:
        return {DType.BF16: torch.bfloat16, DType.FP16: torch.float16, DType.FP32: torch.float32}[self]

    @classmethod
    def parse(cls, text: str | "DType") -> "DType":
        aliases = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32"}
        try:
            return cls(aliases.get(str(text).lower(), str(text).lower()))
        except ValueError:
            raise UsageError(f"unknown dtype `{text}`; use one of `--dtype bf16`, `--dtype fp16`, `--dtype fp32`") from None


def _cast(value, dtype: torch.dtype):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    return value


def _dynamic_shapes(ep: torch.export.ExportedProgram, manifest: Manifest, args: tuple, kwargs: dict, names: list[str]):
    """Rebuild a `dynamic_shapes` spec from the program: one `Dim` per symbol, same name and range."""
    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    by_symbol = {d.symbol: d for d in manifest.dims}
    dims: dict[str, torch.export.Dim] = {}

    def dim_for(size):
        if isinstance(size, int) or not hasattr(size, "node"):
            return None
        expr = size.node.expr
        if not isinstance(expr, sympy.Symbol):
            return torch.export.Dim.AUTO  # a derived size: let export relate it again
        key = str(expr)
        if key not in dims:
            rng = ep.range_constraints.get(expr)
            known = by_symbol.get(key)
            low = int(rng.lower) if rng is not None else 0
            high = None if rng is None or str(rng.upper) in ("oo", "int_oo") else int(rng.upper)
            name = known.name if known and known.name.isidentifier() else key
            dims[key] = torch.export.Dim(name, min=low, **({} if high is None else {"max": high}))
        return dims[key]

    vals = [placeholders[n].meta.get("val") if isinstance(n, str) and n in placeholders else None for n in ep.graph_signature.user_inputs]
    leaves, spec = pytree.tree_flatten((args, kwargs))
    shapes = []
    for leaf, val in zip(leaves, vals):
        if isinstance(leaf, torch.Tensor) and isinstance(val, torch.Tensor):
            per_dim = {d: dim_for(s) for d, s in enumerate(val.shape)}
            shapes.append({d: v for d, v in per_dim.items() if v is not None} or None)
        else:
            shapes.append(None)
    shaped_args, shaped_kwargs = pytree.tree_unflatten(shapes, spec)
    if not shaped_kwargs:
        return tuple(shaped_args)
    return {**{names[i]: s for i, s in enumerate(shaped_args)}, **shaped_kwargs}


def _already_in(ep: torch.export.ExportedProgram, dtype: torch.dtype) -> bool:
    """Every floating parameter and example input of `ep` is `dtype` already.

    Buffers are not asked: a model made in bf16 may keep one in fp32 on purpose (a Llama's rotary `inv_freq`),
    and its graph checks that dtype, so casting it would break the program.
    """
    params = set(ep.graph_signature.parameters)
    tensors = [t for name, t in ep.state_dict.items() if name in params] + pytree.tree_leaves(ep.example_inputs or ())
    return all(t.dtype == dtype for t in tensors if isinstance(t, torch.Tensor) and t.is_floating_point())


def convert_program(ep: torch.export.ExportedProgram, manifest: Manifest, dtype: DType) -> tuple[torch.export.ExportedProgram, Manifest]:
    """Cast the program's floating weights and inputs to `dtype` and export it again.

    Returns:
        The new program and its manifest (inputs with the new dtype, `extra["dtype"]` set).
    """
    target = dtype.torch_dtype
    if _already_in(ep, target):
        # nothing to cast: exporting again would only cost time (a minute for a billion-parameter decoder)
        return ep, manifest.replace(extra={**manifest.extra, "dtype": dtype.value})
    module = ep.module().to(target)
    args, kwargs = ep.example_inputs or ((), {})
    args, kwargs = pytree.tree_map(lambda v: _cast(v, target), (tuple(args), dict(kwargs)))
    names = list(manifest.parameters) or [p for p in inspect.signature(module.forward).parameters]
    dynamic_shapes = _dynamic_shapes(ep, manifest, args, kwargs, names)
    new = export_module(module, args, kwargs, dynamic_shapes=dynamic_shapes)
    dim_names = {}
    by_symbol = {d.symbol: d.name for d in manifest.dims}
    for leaf in manifest.inputs:
        for d, size in enumerate(leaf.shape):
            if isinstance(size, str) and size in by_symbol:
                dim_names[(leaf.name, d)] = by_symbol[size]
    new_manifest = build_manifest(
        new, parameters=list(manifest.parameters), dim_names=dim_names, capture_mode=manifest.capture_mode,
        target=manifest.target, notes=list(manifest.notes),
    )
    return new, new_manifest.replace(extra={**manifest.extra, **new_manifest.extra, "dtype": dtype.value})
