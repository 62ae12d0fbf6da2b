"""The pt2kit manifest: the contract of an artifact, stored inside the `.pt2`.

It records every input and output leaf (dtype, shape with symbolic dims), every symbolic
dim with its range and the user's name for it, the versions that built it, the capture
mode, and a checksum of the weights. `pt2kit run` and `pt2kit.load` check inputs
against it before calling the program.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch.utils import _pytree as pytree

from pt2kit.artifact.manifest_check import check_manifest_data
from pt2kit.artifact.size_expr import parse_size
from pt2kit.target.inputs import dtype_name

MANIFEST_NAME = "pt2kit/manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class LeafSpec:
    """One input or output leaf. `shape` items are ints or symbolic expressions (`s0`, `2*s0`)."""

    name: str
    kind: str  # "tensor" | "constant"
    dtype: str | None = None
    shape: tuple[int | str, ...] = ()
    value: Any = None
    # [low, high) the user gave for the input's values at export (`--input ids=int64[2,128]@0..30000`);
    # `pt2kit verify` draws random values from it. None: not given (never guessed).
    value_range: tuple[float, float] | None = None
    # an input the program takes by keyword (`forward(**{name: ...})`), as the model was exported with
    # `example_kwargs`; False for positional inputs and for outputs (pt2kit.runtime.calling)
    keyword: bool = False

    def __post_init__(self):
        if self.value_range is not None:  # JSON gives a list
            object.__setattr__(self, "value_range", tuple(self.value_range))

    def describe(self) -> str:
        if self.kind == "constant":
            return f"{self.name} = {self.value!r} (constant, fixed at export)"
        return f"{self.name}: {self.dtype}[{', '.join(map(str, self.shape))}]"


@dataclass(frozen=True)
class DimRange:
    """A symbolic dim: torch's symbol, the user's name for it, and its inclusive range (`max` None: unbounded)."""

    symbol: str
    name: str
    min: int
    max: int | None
    used_by: tuple[str, ...] = ()  # the input dims (`x:0`, `mask:0`) whose size it is: they are always equal

    def __post_init__(self):
        object.__setattr__(self, "used_by", tuple(self.used_by))  # JSON gives a list

    def describe(self) -> str:
        shared = f", shared by {', '.join(self.used_by)}" if len(self.used_by) > 1 else ""
        return f"{self.name} ({self.symbol}) in [{self.min}, {'inf' if self.max is None else self.max}]{shared}"


@dataclass(frozen=True)
class DimRelation:
    """A derived input dim: its size is an expression of other dims (`y:1` is `2*s0`, named `2*seq`)."""

    input: str
    dim: int
    expr: str  # in torch's symbols, as the input's shape in the manifest
    named: str  # in the user's names
    min: int
    max: int | None

    def describe(self) -> str:
        return f"{self.input}:{self.dim} = {self.named} in [{self.min}, {'inf' if self.max is None else self.max}]"


@dataclass(frozen=True)
class Manifest:
    """What an artifact takes, returns and was built from."""

    inputs: tuple[LeafSpec, ...]
    outputs: tuple[LeafSpec, ...]
    dims: tuple[DimRange, ...] = ()
    parameters: tuple[str, ...] = ()
    capture_mode: str | None = None
    target: str | None = None
    weights_sha256: str = ""
    parameter_count: int = 0
    parameter_bytes: int = 0
    torch_version: str = torch.__version__
    pt2kit_version: str = ""
    created: str = ""
    notes: tuple[str, ...] = ()
    relations: tuple[DimRelation, ...] = ()  # derived dims (`2*seq`); equal dims share one DimRange
    in_spec: str = ""  # pytree spec of (args, kwargs), torch.utils._pytree.treespec_dumps
    out_spec: str = ""
    # types pt2kit registered as pytree nodes (pt2kit.pytrees.types) and modules whose import registers
    # the rest; pt2kit.load repeats both before reading the program
    pytree_types: tuple[dict, ...] = ()
    pytree_imports: tuple[str, ...] = ()
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    # what `pt2kit tune` chose (candidate name, config, p50_ms, max_abs_err, ...); empty when not tuned
    tuned: dict[str, Any] = field(default_factory=dict)
    # options `pt2kit.load` applies unless the caller overrides them: `cuda_graphs` (bool),
    # `cuda_graph_batch` ({"dim": NAME, "sizes": [...]}: pad that dim to the next captured size)
    load_options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    def describe(self, leaf: LeafSpec) -> str:
        """`leaf.describe()` with symbols replaced by the user's dim names: `x: float32[batch, 64]`."""
        text = leaf.describe()
        for d in sorted(self.dims, key=lambda d: -len(d.symbol)):
            text = re.sub(rf"\b{re.escape(d.symbol)}\b", d.name, text)
        return text

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, default=str)

    @classmethod
    def from_json(cls, data: dict, source: str = "the file") -> "Manifest":
        """The manifest in `data` (its JSON), checked field by field first: a file is data and may have been edited.

        Raises:
            ArtifactError: a field is missing, of the wrong type, out of bounds, or not a size expression.
        """
        check_manifest_data(data, source)
        data = dict(data)
        data["inputs"] = tuple(LeafSpec(**{**x, "shape": tuple(x["shape"])}) for x in data.get("inputs", ()))
        data["outputs"] = tuple(LeafSpec(**{**x, "shape": tuple(x["shape"])}) for x in data.get("outputs", ()))
        data["dims"] = tuple(DimRange(**d) for d in data.get("dims", ()))
        data["relations"] = tuple(DimRelation(**r) for r in data.get("relations", ()))
        for key in ("parameters", "notes", "pytree_types", "pytree_imports"):
            data[key] = tuple(data.get(key, ()))
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes) -> "Manifest":
        return replace(self, **changes)


def leaf_name(path: tuple, parameters: list[str]) -> str:
    """A pytree key path over `(args, kwargs)` as the user would write it: `x`, `x[0]`, `mask['a']`."""
    top, *rest = path
    if top.idx == 0:  # positional args
        index = rest[0].idx
        base = parameters[index] if index < len(parameters) else f"args[{index}]"
        rest = rest[1:]
    else:
        base = str(rest[0].key)
        rest = rest[1:]
    return base + "".join(pytree.keystr((k,)) for k in rest)


def _shape_of(value) -> tuple[int | str, ...]:
    return tuple(int(s) if isinstance(s, int) else str(s.node.expr) if hasattr(s, "node") else int(s) for s in value.shape)


def _leaf_spec(name: str, value, keyword: bool = False) -> LeafSpec:
    if isinstance(value, torch.Tensor):
        return LeafSpec(name, "tensor", dtype_name(value.dtype), _shape_of(value), keyword=keyword)
    return LeafSpec(name, "constant", value=value if isinstance(value, (int, float, bool, str, type(None))) else repr(value),
                    keyword=keyword)


def rebuild_manifest(ep: torch.export.ExportedProgram, old: Manifest, extra: dict | None = None) -> Manifest:
    """The manifest of `ep`, a program exported again from the one `old` describes (cast to another dtype,
    quantized, made channels_last): the same dim names, parameters, capture mode, target and notes, each input's
    declared value range kept (so `verify` still draws integer inputs from it), and `extra` over `old.extra`.
    """
    by_symbol = {d.symbol: d.name for d in old.dims}
    dim_names = {(leaf.name, i): by_symbol[size] for leaf in old.inputs for i, size in enumerate(leaf.shape)
                 if isinstance(size, str) and size in by_symbol}
    new = build_manifest(ep, parameters=list(old.parameters), dim_names=dim_names, capture_mode=old.capture_mode,
                         target=old.target, notes=list(old.notes))
    ranges = {leaf.name: leaf.value_range for leaf in old.inputs if leaf.value_range is not None}
    inputs = tuple(replace(leaf, value_range=ranges[leaf.name]) if leaf.name in ranges else leaf for leaf in new.inputs)
    return new.replace(inputs=inputs, extra={**old.extra, **new.extra, **(extra or {})})


def build_manifest(
    ep: torch.export.ExportedProgram,
    *,
    parameters: list[str],
    dim_names: dict[tuple[str, int], str] | None = None,
    capture_mode: str | None = None,
    target: str | None = None,
    notes: list[str] | tuple[str, ...] = (),
) -> Manifest:
    """Describe an `ExportedProgram` as a `Manifest`.

    Args:
        ep: the program.
        parameters: names of the model's forward parameters, in order (name the leaves).
        dim_names: (input name, dim) -> the user's name for a dynamic dim (from `--dynamic`).
    """
    from pt2kit import __version__

    dim_names = dim_names or {}
    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    user_inputs = [placeholders[name].meta.get("val") if name in placeholders else None for name in ep.graph_signature.user_inputs]
    # user_inputs lists names for tensors and the constant value itself for non-tensor leaves
    leaves = []
    (example_args, example_kwargs) = ep.example_inputs or ((), {})
    paths = [p for p, _ in pytree.tree_flatten_with_path((example_args, example_kwargs))[0]]
    for path, name_or_value, val in zip(paths, ep.graph_signature.user_inputs, user_inputs):
        name = leaf_name(path, parameters)
        leaves.append(_leaf_spec(name, val if val is not None else name_or_value, keyword=path[0].idx == 1))
    out_node = next(n for n in ep.graph.nodes if n.op == "output")
    out_vals = [a.meta.get("val") if isinstance(a, torch.fx.Node) else a for a in out_node.args[0]]
    out_vals = out_vals[len(out_vals) - len(ep.graph_signature.user_outputs):]
    out_paths = [p for p, _ in pytree.tree_flatten_with_path(pytree.tree_unflatten(list(range(len(out_vals))), ep.call_spec.out_spec))[0]]
    outputs = [_leaf_spec("output" + pytree.keystr(p), v) for p, v in zip(out_paths, out_vals)]

    names_by_symbol: dict[str, str] = {}
    used_by: dict[str, list[str]] = {}
    for leaf in leaves:
        for d, size in enumerate(leaf.shape):
            if isinstance(size, str) and size.isidentifier():
                names_by_symbol.setdefault(size, dim_names.get((leaf.name, d), f"{leaf.name}_dim{d}"))
                used_by.setdefault(size, []).append(f"{leaf.name}:{d}")
            elif isinstance(size, str):  # derived (`2*s0`): the user's `2*half` names the root `s0` `half`
                symbols, names = re.findall(r"[A-Za-z_]\w*", size), re.findall(r"[A-Za-z_]\w*", dim_names.get((leaf.name, d), ""))
                if len(symbols) == 1 and len(names) == 1:
                    names_by_symbol.setdefault(symbols[0], names[0])
    # unbacked symbols (values read from tensors, unbounded below) are no input's size: not dims
    ranges = {str(sym): (int(vr.lower), None if str(vr.upper) in ("oo", "int_oo") else int(vr.upper))
              for sym, vr in ep.range_constraints.items() if str(vr.lower) not in ("-oo", "-int_oo")}
    dims = [DimRange(sym, names_by_symbol.get(sym, sym), *rng, tuple(used_by.get(sym, ())))
            for sym, rng in ranges.items() if sym.isidentifier()]
    relations = []
    for leaf in leaves:
        for d, size in enumerate(leaf.shape):
            if isinstance(size, str) and not size.isidentifier():
                named = re.sub(r"[A-Za-z_]\w*", lambda m: names_by_symbol.get(m.group(), m.group()), size)
                low, high = ranges.get(size) or _derived_range(size, ranges)
                relations.append(DimRelation(leaf.name, d, size, named, low, high))
    count, nbytes, digest = weights_summary(ep)
    return Manifest(
        inputs=tuple(leaves), outputs=tuple(outputs), dims=tuple(sorted(dims, key=lambda d: d.symbol)),
        parameters=tuple(parameters), capture_mode=capture_mode, target=target, weights_sha256=digest,
        parameter_count=count, parameter_bytes=nbytes, pt2kit_version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), notes=tuple(notes), relations=tuple(relations),
        in_spec=pytree.treespec_dumps(ep.call_spec.in_spec), out_spec=pytree.treespec_dumps(ep.call_spec.out_spec),
    )


def _derived_range(expr: str, ranges: dict[str, tuple[int, int | None]]) -> tuple[int, int | None]:
    """The range of `A*s0 + B` from its root's range (derived sizes grow with their root)."""
    parsed = parse_size(expr)
    roots = [ranges.get(s) for s in parsed.symbols]
    if len(roots) != 1 or roots[0] is None:
        return 0, None
    (sym,), (low, high) = parsed.symbols, roots[0]
    return parsed.evaluate({sym: low}), None if high is None else parsed.evaluate({sym: high})


def weights_summary(ep: torch.export.ExportedProgram) -> tuple[int, int, str]:
    """(element count, bytes, sha256) over the program's parameters, buffers and constants."""
    digest = hashlib.sha256()
    count = nbytes = 0
    tensors = dict(ep.state_dict)
    tensors.update({k: v for k, v in ep.constants.items() if isinstance(v, torch.Tensor)})
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        count += t.numel()
        nbytes += t.numel() * t.element_size()
        digest.update(name.encode())
        # the array itself, not `.tobytes()`: no second copy of the largest tensor (200 MB for a 3B model's embedding)
        digest.update(t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b"")
    return count, nbytes, digest.hexdigest()


def declared_value_ranges(specs, parameters: list[str]) -> dict[str, tuple[float, float]]:
    """Input name -> [low, high) for each `--input` given with a range (`ids=int64[2,128]@0..30000`).

    Unnamed specs are positional: the i-th one names `parameters[i]`.
    """
    ranges: dict[str, tuple[float, float]] = {}
    position = 0
    for spec in specs:
        name = spec.name
        if name is None:
            name = parameters[position] if position < len(parameters) else f"args[{position}]"
            position += 1
        if spec.kind == "random" and spec.low is not None and spec.high is not None:
            low, high = spec.low, spec.high
            if not spec.dtype.is_floating_point:
                low, high = int(low), int(high)
            ranges[name] = (low, high)
    return ranges


def with_value_ranges(leaves: tuple[LeafSpec, ...], ranges: dict[str, tuple[float, float]]) -> tuple[LeafSpec, ...]:
    """`leaves` with `value_range` set on each tensor input named in `ranges`."""
    from dataclasses import replace

    return tuple(replace(leaf, value_range=tuple(ranges[leaf.name])) if leaf.name in ranges and leaf.kind == "tensor" else leaf
                 for leaf in leaves)
