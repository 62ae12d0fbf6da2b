"""`--dtype`: convert a program's floating weights, then export it again.

The program is turned back into a module (`ExportedProgram.module()`), its floating
parameters and buffers are cast with `Module.to(dtype)`, and the module is exported again
with the same dynamic dims (same names and ranges). Integer and boolean tensors are left
alone. Dtypes written inside the graph itself (`torch.full(..., dtype=torch.float32)`) are
kept: such ops compute in fp32.

The calling contract is kept by default (`io="model"`): the program is wrapped in
`CastInside`, which casts floating inputs to `dtype` on entry and each floating output back
to the dtype the model returned, so a float32 caller of a bf16 build passes and gets float32
(as the channels_last transform converts layout inside). `io="low"` (`--low-precision-io`)
exposes the lower-precision interface instead: inputs and outputs in `dtype`, no casts.
"""

from __future__ import annotations

import copy
import inspect
from enum import Enum

import sympy
import torch
from torch.utils import _pytree as pytree

from pt2kit.errors import UsageError
from pt2kit.target.inputs import CAST_ALIASES, CAST_DTYPES
from pt2kit.artifact.manifest import Manifest, rebuild_manifest
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
        return CAST_DTYPES[self.value]

    @classmethod
    def parse(cls, text: str | "DType") -> "DType":
        try:
            return cls(CAST_ALIASES.get(str(text).lower(), str(text).lower()))
        except ValueError:
            raise UsageError(f"unknown dtype `{text}`; use one of `--dtype bf16`, `--dtype fp16`, `--dtype fp32`") from None


IO_MODES = ("model", "low")


class CastInside(torch.nn.Module):
    """`module` computing in a lower dtype behind the model's own interface.

    Floating inputs are cast to `dtype` on entry; floating output leaf `i` is cast back to `out_dtypes[i]`
    (the dtype the model returned there). Non-floating leaves pass through.
    """

    def __init__(self, module: torch.nn.Module, dtype: torch.dtype, out_dtypes: tuple[torch.dtype | None, ...]):
        super().__init__()
        self.module = module
        self.dtype = dtype
        self.out_dtypes = out_dtypes

    def forward(self, *args, **kwargs):
        args, kwargs = pytree.tree_map(lambda v: _cast(v, self.dtype), (args, kwargs))
        out = self.module(*args, **kwargs)
        leaves, spec = pytree.tree_flatten(out)
        back = [v.to(d) if isinstance(v, torch.Tensor) and v.is_floating_point() and d is not None else v
                for v, d in zip(leaves, self.out_dtypes)]
        return pytree.tree_unflatten(back, spec)


def output_dtypes(ep: torch.export.ExportedProgram) -> tuple[torch.dtype | None, ...]:
    """The dtype of each flat user output of `ep` (None for a non-tensor)."""
    node = next(n for n in ep.graph.nodes if n.op == "output")
    vals = [getattr(v, "meta", {}).get("val") for v in pytree.tree_leaves(node.args[0])]
    vals = vals[len(vals) - len(ep.graph_signature.user_outputs):]  # mutated buffers come first
    return tuple(v.dtype if isinstance(v, torch.Tensor) else None for v in vals)


def keep_interface(module: torch.nn.Module, ep: torch.export.ExportedProgram, dtype: torch.dtype) -> torch.nn.Module:
    """`module` (already in `dtype`) wrapped so it takes and returns `ep`'s own dtypes, with `module`'s signature."""
    return with_signature_of(module, CastInside(module, dtype, output_dtypes(ep)))


def with_signature_of(module: torch.nn.Module, wrapper: torch.nn.Module) -> torch.nn.Module:
    """`wrapper` (whose forward takes `*args, **kwargs`) made to show `module.forward`'s signature.

    torch.export binds inputs through `forward`'s signature; through `*args, **kwargs` an all-keyword program
    (every transformers model) cannot be given its dynamic dims (torch 2.13 rejects each spelling of them), so
    the wrapper takes the program's own parameters, and `dynamic_shapes` is written as for the program itself.
    """
    signature = inspect.signature(module.forward)
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *signature.parameters.values()]
    base = type(wrapper)

    def forward(self, *args, **kwargs):
        return base.forward(self, *args, **kwargs)

    forward.__signature__ = signature.replace(parameters=params)
    wrapper.__class__ = type(base.__name__, (base,), {"forward": forward})
    return wrapper


def check_io(io: str) -> str:
    if io not in IO_MODES:
        raise UsageError(f"unknown interface `{io}`; use io=\"model\" (the model's dtypes) or io=\"low\" (`--low-precision-io`)")
    return io


def _cast(value, dtype: torch.dtype):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    return value


def dynamic_shapes_for(ep: torch.export.ExportedProgram, manifest: Manifest, args: tuple, kwargs: dict, names: list[str]):
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


def convert_program(ep: torch.export.ExportedProgram, manifest: Manifest, dtype: DType,
                    io: str = "model") -> tuple[torch.export.ExportedProgram, Manifest]:
    """Cast the program's floating weights to `dtype` and export it again.

    Args:
        io: `model` keeps the program's input and output dtypes (casts inside); `low` makes them `dtype`.

    Returns:
        The new program and its manifest (`extra["dtype"]` set, `extra["io"]` the interface; with `io="low"` the
        inputs have the new dtype).
    """
    target = dtype.torch_dtype
    if _already_in(ep, target):
        # nothing to cast: exporting again would only cost time (a minute for a billion-parameter decoder)
        return ep, manifest.replace(extra={**manifest.extra, "dtype": dtype.value, "io": check_io(io)})
    # a copy: `Module.to` casts parameters in place, and they are shared with `ep` (and, for a program exported in
    # this process, with the caller's own model)
    inner = copy.deepcopy(ep.module())
    names = list(manifest.parameters) or [p for p in inspect.signature(inner.forward).parameters]
    inner = inner.to(target)
    args, kwargs = ep.example_inputs or ((), {})
    args, kwargs = tuple(args), dict(kwargs)
    if check_io(io) == "low":
        module = inner
        args, kwargs = pytree.tree_map(lambda v: _cast(v, target), (args, kwargs))
    else:
        module = keep_interface(inner, ep, target)
    dynamic_shapes = dynamic_shapes_for(ep, manifest, args, kwargs, names)  # the wrapper has the program's signature
    new = export_module(module, args, kwargs, dynamic_shapes=dynamic_shapes)
    return new, rebuild_manifest(new, manifest, extra={"dtype": dtype.value, "io": io})
