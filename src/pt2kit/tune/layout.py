"""channels_last as a program transform: the same contract outside, channels_last weights and activations inside.

The program's module is wrapped so that every 4-d floating input is made channels_last on entry, its 4-d
weights are converted, and it is exported again with the same dynamic dims. Callers still pass ordinary
contiguous tensors (the manifest's contract does not change); the one copy on entry is what it costs.
"""

from __future__ import annotations

import inspect

import torch
from torch.utils import _pytree as pytree

from pt2kit.artifact.manifest import Manifest, rebuild_manifest
from pt2kit.capture.capture import export_module
from pt2kit.compile.dtype import dynamic_shapes_for, with_signature_of


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


def to_channels_last(ep: torch.export.ExportedProgram, manifest: Manifest) -> tuple[torch.export.ExportedProgram, Manifest]:
    """`ep` exported again with channels_last weights and inputs converted on entry; the contract is unchanged."""
    args, kwargs = ep.example_inputs or ((), {})
    args, kwargs = tuple(args), dict(kwargs)
    inner = ep.module()
    module = with_signature_of(inner, _ChannelsLast(inner))  # keyword inputs keep their dynamic dims
    names = list(manifest.parameters) or list(inspect.signature(inner.forward).parameters)
    new = export_module(module, args, kwargs, dynamic_shapes=dynamic_shapes_for(ep, manifest, args, kwargs, names))
    return new, rebuild_manifest(new, manifest, extra={"channels_last": True})
