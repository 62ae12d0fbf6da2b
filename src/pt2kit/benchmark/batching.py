"""Batch sizes: which inputs carry the batch, resizing them, and the `--dynamic` spec for one build.

The batch is dim 0 of the first top-level tensor input; every top-level tensor input whose
dim 0 has that same size is resized with it (so `ids` and `mask` move together, a lookup
table of another size does not). Resizing keeps real values: rows are repeated, then cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pt2kit.errors import UsageError


@dataclass(frozen=True)
class BatchLayout:
    """Where the batch lives in a model's inputs.

    Attributes:
        size: the example inputs' batch size (None: no tensor input has a dim 0).
        positions: indices of the positional inputs that carry the batch.
        keys: names of the keyword inputs that carry the batch.
        names: the forward parameter name of each batched input, or None if one is unnamed (`*args`).
    """

    size: int | None
    positions: tuple[int, ...]
    keys: tuple[str, ...]
    names: tuple[str, ...] | None

    def resize(self, args: tuple, kwargs: dict, batch_size: int) -> tuple[tuple, dict]:
        """The inputs with every batched tensor's dim 0 made `batch_size`."""
        if self.size is None or batch_size == self.size:
            return args, kwargs
        new_args = tuple(_resize(a, batch_size) if i in self.positions else a for i, a in enumerate(args))
        new_kwargs = {k: _resize(v, batch_size) if k in self.keys else v for k, v in kwargs.items()}
        return new_args, new_kwargs

    def dynamic_spec(self, low: int, high: int) -> str | None:
        """A `--dynamic` spec that makes dim 0 of every batched input one shared dim `batch[low,high]`."""
        if not self.names:
            return None
        return ",".join(f"{name}:0=batch[{low},{high}]" for name in self.names)


def batch_layout(args: tuple, kwargs: dict, parameter_names: list[str]) -> BatchLayout:
    """Find the batched inputs of `args`/`kwargs` (see the module docstring)."""
    tensors = [(("arg", i), a) for i, a in enumerate(args)] + [(("kw", k), v) for k, v in kwargs.items()]
    tensors = [(where, t) for where, t in tensors if isinstance(t, torch.Tensor) and t.dim() >= 1]
    if not tensors:
        return BatchLayout(None, (), (), None)
    size = tensors[0][1].shape[0]
    batched = [where for where, t in tensors if t.shape[0] == size]
    positions = tuple(i for kind, i in batched if kind == "arg")
    keys = tuple(k for kind, k in batched if kind == "kw")
    names: list[str] | None = []
    for i in positions:
        if i >= len(parameter_names):
            names = None
            break
        names.append(parameter_names[i])
    if names is not None:
        names += list(keys)
    return BatchLayout(int(size), positions, keys, tuple(names) if names is not None else None)


def parse_batch_sizes(text: str | None) -> tuple[int, ...] | None:
    """`"1,8,32"` -> (1, 8, 32). None or empty -> None (the example's own batch size).

    Raises:
        UsageError: not a comma-separated list of positive integers.
    """
    if text is None or not text.strip():
        return None
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UsageError(f"`--batch-sizes {text}` is not a list of integers; write e.g. `--batch-sizes 1,8,32`") from None
    if not sizes or any(s < 1 for s in sizes):
        raise UsageError(f"`--batch-sizes {text}`: each batch size must be at least 1; write e.g. `--batch-sizes 1,8,32`")
    return tuple(dict.fromkeys(sizes))


def _resize(t: Any, n: int) -> Any:
    if t.shape[0] >= n:
        return t[:n].clone()
    reps = -(-n // t.shape[0])
    return t.repeat(reps, *([1] * (t.dim() - 1)))[:n].contiguous()
