"""Each mode's outputs against the eager model's, once per batch size, before any timing.

A fast mode that computes something else is not a result: `bench` marks it `wrong` in the table and the JSON
(and exits 1), with the first output that disagrees and by how much. Tolerances are `pt2kit verify`'s defaults
for the output's dtype, the model's precision and the device (docs/verify.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils import _pytree as pytree

from pt2kit.verify.compare import compare_leaf, default_tolerance


@dataclass(frozen=True)
class Agreement:
    """One mode at one batch size against eager: `ok`, the largest error seen, and the first problem (if any)."""

    ok: bool
    max_abs_err: float = 0.0
    problem: str = ""

    def __str__(self) -> str:
        return "outputs match eager" if self.ok else f"outputs differ from eager: {self.problem}"


def output_tensors(outputs: Any) -> list[torch.Tensor]:
    """The tensors of an output, in pytree order (ONNX Runtime's list of numpy arrays included)."""
    leaves = pytree.tree_leaves(outputs)
    tensors = []
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor):
            tensors.append(leaf)
        elif type(leaf).__module__ == "numpy" and hasattr(leaf, "shape"):
            tensors.append(torch.from_numpy(leaf))
    return tensors


def agreement(expected: Any, actual: Any, *, device: str, compute: str | None, tf32: bool) -> Agreement:
    """Compare every output tensor of a mode with eager's, leaf by leaf.

    Args:
        expected, actual: the eager and the mode's outputs on the same inputs.
        device: where they ran (`cpu`, `cuda:0`): picks the tolerance row.
        compute: the model's floating dtype name (a bfloat16 model is held to bfloat16 tolerances).
        tf32: TF32 matmuls or convolutions were allowed (float32 on CUDA).
    """
    want, got = output_tensors(expected), output_tensors(actual)
    if len(want) != len(got):
        return Agreement(False, float("inf"), f"returned {len(got)} output tensors, eager returns {len(want)}")
    worst = 0.0
    for i, (e, a) in enumerate(zip(want, got)):
        if e.is_floating_point() and a.is_floating_point() and a.element_size() < e.element_size():
            # an artifact built in a lower precision (`compile --dtype bf16`, `tune`): held to that precision, as
            # `verify` holds it, rather than failed for its dtype
            e = e.to(a.dtype)
        tol = default_tolerance(e.dtype, compute, "cpu" if device == "cpu" else "cuda", tf32)
        result = compare_leaf(e, a, tol)
        worst = max(worst, result.max_abs_err)
        if result.problems:
            kind, text = result.problems[0]
            return Agreement(False, worst, f"output {i}: {text} (max abs error {result.max_abs_err:.3g}; {tol} for {tol.basis})")
    return Agreement(True, worst)


def tf32_allowed(module: torch.nn.Module) -> bool:
    """TF32 is in play for float32 on CUDA: matmuls allowed it, or convolutions (cuDNN's default) in a conv model."""
    matmul = torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest"
    convs = torch.backends.cudnn.allow_tf32 and any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in module.modules())
    return bool(matmul or convs)


__all__ = ["Agreement", "agreement", "output_tensors", "tf32_allowed"]
