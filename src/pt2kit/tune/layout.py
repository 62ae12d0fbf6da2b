"""channels_last as a program transform: the same contract outside, channels_last weights and activations inside.

The program's module is wrapped so that every 4-d floating input is made channels_last on entry, its 4-d
weights are converted, and it is exported again with the same dynamic dims. Callers still pass ordinary
contiguous tensors (the manifest's contract does not change); the one copy on entry is what it costs.
"""

from __future__ import annotations

import torch
from torch.utils import _pytree as pytree

from pt2kit.artifact.manifest import Manifest, build_manifest
from pt2kit.capture.capture import export_module


def has_image_inputs(manifest: Manifest) -> bool:
    """True when some input is a 4-d floating tensor (a convolutional model's NCHW images)."""
    return any(leaf.kind == "tensor" and len(leaf.shape) == 4 and leaf.dtype in ("float32", "bfloat16", "float16")
               for leaf in manifest.inputs)


class _ChannelsLast(torch.nn.Module):
    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module.to(memory_format=torch.channels_last)

    def forward(self, *args, **kwargs):
        def convert(t):
            if isinstance(t, torch.Tensor) and t.dim() == 4 and t.is_floating_point():
                return t.contiguous(memory_format=torch.channels_last)
            return t

        args, kwargs = pytree.tree_map(convert, (args, kwargs))
        return self.module(*args, **kwargs)


def _dynamic_shapes(manifest: Manifest, args: tuple, kwargs: dict):
    """The manifest's dynamic dims as a `dynamic_shapes` spec over (args, kwargs): one `Dim` per symbol."""
    dims = {d.symbol: torch.export.Dim(d.name if d.name.isidentifier() else d.symbol, min=d.min,
                                       **({} if d.max is None else {"max": d.max}))
            for d in manifest.dims}
    if not dims:
        return None
    leaves, spec = pytree.tree_flatten((tuple(args), dict(kwargs)))
    shapes = []
    for leaf, entry in zip(leaves, manifest.inputs):
        if not isinstance(leaf, torch.Tensor):
            shapes.append(None)
            continue
        per_dim = {i: (dims[s] if s in dims else torch.export.Dim.AUTO) for i, s in enumerate(entry.shape) if isinstance(s, str)}
        shapes.append(per_dim or None)
    shaped_args, shaped_kwargs = pytree.tree_unflatten(shapes, spec)
    if not shaped_kwargs:
        return (tuple(shaped_args),)  # the wrapper's forward(*args): one entry, the tuple of args
    return {"args": tuple(shaped_args), "kwargs": shaped_kwargs}


def to_channels_last(ep: torch.export.ExportedProgram, manifest: Manifest) -> tuple[torch.export.ExportedProgram, Manifest]:
    """`ep` exported again with channels_last weights and inputs converted on entry; the contract is unchanged."""
    args, kwargs = ep.example_inputs or ((), {})
    module = _ChannelsLast(ep.module())
    new = export_module(module, tuple(args), dict(kwargs), dynamic_shapes=_dynamic_shapes(manifest, args, kwargs))
    dim_names = {}
    by_symbol = {d.symbol: d.name for d in manifest.dims}
    for leaf in manifest.inputs:
        for i, size in enumerate(leaf.shape):
            if isinstance(size, str) and size in by_symbol:
                dim_names[(leaf.name, i)] = by_symbol[size]
    rebuilt = build_manifest(new, parameters=list(manifest.parameters), dim_names=dim_names, capture_mode=manifest.capture_mode,
                             target=manifest.target, notes=list(manifest.notes))
    rebuilt = rebuilt.replace(inputs=tuple(_keep_range(a, b) for a, b in zip(rebuilt.inputs, manifest.inputs)))
    return new, rebuilt.replace(extra={**manifest.extra, "channels_last": True})


def _keep_range(new, old):
    from dataclasses import replace

    return replace(new, value_range=old.value_range) if old.value_range is not None else new
