"""Propose a dynamic-shape spec from two or more sample input sets.

A dim whose size differs across the samples becomes dynamic; dims whose sizes agree in every
sample share one name (one `Dim`), since that is the only evidence the samples give that two
dims are one. The range proposed is the span the samples cover, `[smallest, largest]`.
Names follow the dim's position where that suggests one (dim 0 of a batched input is `batch`,
dim 1 of token ids is `seq`, dims 2 and 3 of an image are `height` and `width`); the names are
cosmetic, the grouping comes from the sizes alone. Relations such as `2*seq` are not guessed
from a few samples: export finds them, and repair applies them (pt2kit.shapes.repair).

A `--sample` value is one input set: a tensor file (`a.safetensors`, every tensor bound by
its key; `.pt` holding a dict) or `--input` specs separated by spaces, e.g.
`--sample "ids=int64[2,16]@0..1000 mask=bool[2,16]"`.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pt2kit.errors import InputSpecError
from pt2kit.target.inputs import InputSpec, dtype_name, parse_input, resolve_inputs
from pt2kit.target.resolve import signature_order
from pt2kit.shapes.spec import DimEntry, DynamicSpec

Sample = tuple[tuple, dict]


@dataclass(frozen=True)
class DimObservation:
    """The sizes one input dim had across the samples, and the name proposed for it (None: static)."""

    input: str
    dim: int
    sizes: tuple[int, ...]
    name: str | None

    def to_json(self) -> dict:
        return {"input": self.input, "dim": self.dim, "sizes": list(self.sizes), "name": self.name}


@dataclass(frozen=True)
class ShapeInference:
    """What `infer_shapes` saw and proposes.

    Attributes:
        spec: the proposed spec (pass it as `dynamic=` to `export_program`).
        observations: every tensor dim with its sizes across the samples.
        notes: what the proposal rests on (dims merged only because they always agreed).
        example: index of the sample best used as the export example (no dynamic dim below 2).
    """

    spec: DynamicSpec
    observations: tuple[DimObservation, ...]
    samples: int
    notes: tuple[str, ...] = ()
    example: int = 0

    def __str__(self) -> str:
        lines = [f"inferred from {self.samples} samples:"]
        for name, (low, high) in self.spec.roots().items():
            obs = [o for o in self.observations if o.name == name]
            dims = ", ".join(f"{o.input}:{o.dim}" for o in obs)
            lines.append(f"  {name}: {dims} sizes {', '.join(map(str, obs[0].sizes))} -> [{low}, {high}]")
        static = [f"{o.input}:{o.dim}={o.sizes[0]}" for o in self.observations if o.name is None]
        if static:
            lines.append(f"  static: {', '.join(static)}")
        lines += [f"  note: {n}" for n in self.notes]
        if self.spec:
            lines.append(f"  --dynamic {self.spec}")
            lines += ["  " + ln for ln in self.spec.code().splitlines()]
        else:
            lines.append("  every dim had the same size in every sample: nothing is dynamic")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "samples": self.samples, "dynamic": str(self.spec), "code": self.spec.code(), "example": self.example,
            "observations": [o.to_json() for o in self.observations], "notes": list(self.notes),
        }


def infer_dynamic(samples: list[Sample], param_names: list[str]) -> DynamicSpec:
    """The dynamic spec the samples suggest: `infer_shapes(samples, param_names).spec`.

    Example:
        >>> infer_dynamic([((torch.zeros(2, 8),), {}), ((torch.zeros(4, 8),), {})], ["x"])
        ... # x:0=batch[2,4]
    """
    return infer_shapes(samples, param_names).spec


def infer_shapes(samples: list[Sample], param_names: list[str]) -> ShapeInference:
    """Compare two or more sample input sets and propose which dims are dynamic.

    Args:
        samples: `(args, kwargs)` per sample, for the same model.
        param_names: forward's parameter names, to name positional inputs.

    Returns:
        A `ShapeInference` with the proposed `DynamicSpec`.

    Raises:
        InputSpecError: fewer than two samples, or samples that differ in inputs, rank or dtype.
    """
    if len(samples) < 2:
        raise InputSpecError(f"shape inference needs two or more samples, got {len(samples)}; pass `--sample` again with other sizes")
    bound = [_bind_names(args, kwargs, param_names) for args, kwargs in samples]
    first = bound[0]
    tensors = [n for n, v in first.items() if isinstance(v, torch.Tensor)]
    for i, b in enumerate(bound[1:], start=2):
        _check_same_inputs(first, b, i)
    groups: dict[tuple[int, ...], list[tuple[str, int]]] = {}
    static: list[DimObservation] = []
    for name in tensors:
        for d in range(first[name].dim()):
            sizes = tuple(int(b[name].shape[d]) for b in bound)
            if len(set(sizes)) == 1:
                static.append(DimObservation(name, d, sizes, None))
            else:
                groups.setdefault(sizes, []).append((name, d))
    names: dict[tuple[int, ...], str] = {}
    for sizes, members in groups.items():
        names[sizes] = _choose_name(members, first, set(names.values()))
    entries, observations, notes = [], list(static), []
    for sizes, members in groups.items():
        name = names[sizes]
        for i, (inp, d) in enumerate(members):
            low, high = (min(sizes), max(sizes)) if i == 0 else (None, None)
            entries.append(DimEntry(inp, d, name, low, high))
            observations.append(DimObservation(inp, d, sizes, name))
        by_input: dict[str, list[int]] = {}
        for inp, d in members:
            by_input.setdefault(inp, []).append(d)
        for inp, dims in by_input.items():
            if len(dims) > 1:
                notes.append(
                    f"dims {', '.join(map(str, dims))} of `{inp}` had equal sizes in every sample, so they share `{name}`; "
                    "give a sample where they differ to keep them apart"
                )
    order = {(n, d): i for i, (n, d) in enumerate((n, d) for n in tensors for d in range(first[n].dim()))}
    entries.sort(key=lambda e: order[(e.input, e.dim)])
    _move_bounds_first(entries)
    observations.sort(key=lambda o: order[(o.input, o.dim)])
    spec = DynamicSpec(tuple(entries))
    example = next((i for i, b in enumerate(bound) if all(b[e.input].shape[e.dim] >= 2 for e in entries)), 0)
    return ShapeInference(spec, tuple(observations), len(samples), tuple(notes), example)


def _move_bounds_first(entries: list[DimEntry]) -> None:
    """After sorting, put each name's range on its first entry, so `x:0=batch[2,8],y:0=batch` reads well."""
    bounds = {e.name: (e.min, e.max) for e in entries if e.min is not None}
    seen: set[str] = set()
    for i, e in enumerate(entries):
        low, high = bounds[e.name] if e.name not in seen else (None, None)
        entries[i] = DimEntry(e.input, e.dim, e.name, low, high)
        seen.add(e.name)


def _bind_names(args: tuple, kwargs: dict, param_names: list[str]) -> dict[str, Any]:
    if len(args) > len(param_names):
        raise InputSpecError(f"a sample has {len(args)} positional inputs, but forward takes {len(param_names)}: {', '.join(param_names)}")
    bound = dict(zip(param_names, args))
    bound.update(kwargs)
    return bound


def _check_same_inputs(first: dict[str, Any], other: dict[str, Any], index: int) -> None:
    if set(first) != set(other):
        raise InputSpecError(
            f"sample {index} has inputs {sorted(other)}, sample 1 has {sorted(first)}; every sample needs the same inputs"
        )
    for name, value in first.items():
        theirs = other[name]
        if isinstance(value, torch.Tensor) != isinstance(theirs, torch.Tensor):
            raise InputSpecError(f"input `{name}` is a tensor in one sample and not in sample {index}; give a tensor in every sample")
        if not isinstance(value, torch.Tensor):
            continue
        if value.dim() != theirs.dim():
            raise InputSpecError(
                f"input `{name}` has {theirs.dim()} dims in sample {index} but {value.dim()} in sample 1; a dim can change size, not the rank"
            )
        if value.dtype != theirs.dtype:
            raise InputSpecError(
                f"input `{name}` is {dtype_name(theirs.dtype)} in sample {index} but {dtype_name(value.dtype)} in sample 1; give one dtype"
            )


def _choose_name(members: list[tuple[str, int]], bound: dict[str, Any], taken: set[str]) -> str:
    """A readable, unused name for a group of dims that always agreed (position is only a hint)."""
    candidates = []
    for inp, d in members:
        hint = _position_hint(bound[inp], d)
        if hint:
            candidates.append(hint)
    inp, d = members[0]
    candidates += [f"{inp}_{c}" for c in candidates] + [f"{inp}_dim{d}"]
    for name in candidates:
        if name not in taken and name != "auto":
            return name
    n = 2
    while f"{inp}_dim{d}_{n}" in taken:
        n += 1
    return f"{inp}_dim{d}_{n}"


def _position_hint(t: torch.Tensor, d: int) -> str | None:
    rank = t.dim()
    if rank >= 2 and d == 0:
        return "batch"
    if rank == 2 and d == 1 and not t.dtype.is_floating_point:
        return "seq"  # token ids, masks
    if rank == 3 and d == 1:
        return "seq"  # (batch, seq, hidden)
    if rank == 4 and d in (2, 3):
        return ("height", "width")[d - 2]
    if rank == 1:
        return "length"
    return None


def parse_sample(text: str) -> list[InputSpec]:
    """One `--sample` value: a tensor file, or `--input` specs separated by spaces.

    Raises:
        InputSpecError: a spec inside does not parse.
    """
    text = text.strip()
    if not text:
        raise InputSpecError("`--sample` is empty; give a file (`a.safetensors`) or input specs (`\"x=float32[2,16] y=...\"`)")
    if " " not in text and "=" not in text and Path(text.lstrip("@")).suffix in (".safetensors", ".pt", ".pth", ".npy"):
        return [parse_input("@" + text.lstrip("@"))]
    # split on spaces outside brackets: `x=float32[2, 16]` stays one spec
    parts = [p for p in re.split(r"\s+(?![^\[]*\])", text) if p]
    return [parse_input(p) for p in parts]


def load_samples(module: torch.nn.Module, texts: list[str], seed: int = 0) -> list[Sample]:
    """Each `--sample` value as `(args, kwargs)`, checked against `module.forward` and kept as given
    (named inputs stay keyword, as `load_target` keeps them).

    Raises:
        InputSpecError: a sample does not parse or does not fit forward's parameters.
        TensorFileError: a sample file cannot be read.
    """
    try:
        signature = inspect.signature(module.forward)
    except (TypeError, ValueError):
        signature = None
    samples = []
    for i, text in enumerate(texts, start=1):
        positional, named = resolve_inputs(parse_sample(text), seed + i)
        if signature is None:
            samples.append((tuple(positional), named))
            continue
        try:
            signature.bind(*positional, **named)
        except TypeError as exc:
            raise InputSpecError(f"`--sample {text}` does not fit forward({', '.join(signature.parameters)}): {exc}") from None
        samples.append((tuple(positional), signature_order(module, named)))
    return samples


__all__ = ["DimObservation", "ShapeInference", "infer_dynamic", "infer_shapes", "load_samples", "parse_sample"]
