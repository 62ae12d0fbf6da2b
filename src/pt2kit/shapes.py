"""Dynamic shapes: the `--dynamic` grammar and its translation to `torch.export.Dim`.

Grammar (entries separated by commas)::

    x:0=batch[1,64]              dim 0 of input `x` is `Dim("batch", min=1, max=64)`
    x:0=batch,x:1=seq[1,512]     several dims; bounds are optional
    ids:0=batch,mask:0=batch     one name across inputs is one shared Dim
    x:0=batch[2,]  x:0=batch[,64] open bounds
    x:0=auto                     `Dim.AUTO`: torch decides (dynamic or static)
    auto                         `Dim.AUTO` for every dim of every tensor input
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch.export import Dim

from pt2kit.errors import InputSpecError


@dataclass(frozen=True)
class DimEntry:
    """One dynamic dim: `input:dim=name[min,max]` (`name` is `auto` for `Dim.AUTO`)."""

    input: str
    dim: int
    name: str
    min: int | None = None
    max: int | None = None

    @property
    def is_auto(self) -> bool:
        return self.name == "auto"

    def __str__(self) -> str:
        bounds = f"[{'' if self.min is None else self.min},{'' if self.max is None else self.max}]"
        return f"{self.input}:{self.dim}={self.name}" + ("" if self.is_auto or (self.min is None and self.max is None) else bounds)


@dataclass(frozen=True)
class DynamicSpec:
    """A parsed `--dynamic` value. `all_auto` is the bare `auto` form."""

    entries: tuple[DimEntry, ...] = ()
    all_auto: bool = False

    def __str__(self) -> str:
        return "auto" if self.all_auto else ",".join(map(str, self.entries))

    def __bool__(self) -> bool:
        return self.all_auto or bool(self.entries)

    def dim_names(self) -> dict[tuple[str, int], str]:
        """(input, dim) -> the user's name for it, for the manifest."""
        return {(e.input, e.dim): e.name for e in self.entries if not e.is_auto}


class _Scanner:
    """Reads a `--dynamic` spec left to right; every error names the column it stopped at."""

    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if not self.done() else ""

    def take(self, pattern: str, what: str) -> str:
        m = re.compile(pattern).match(self.text, self.pos)
        if not m or not m.group():
            raise self.error(what)
        self.pos = m.end()
        return m.group()

    def optional_int(self) -> int | None:
        m = re.compile(r"\d*").match(self.text, self.pos)
        self.pos = m.end()
        return int(m.group()) if m.group() else None

    def error(self, expected: str) -> InputSpecError:
        found = f"`{self.peek()}`" if not self.done() else "the end"
        return InputSpecError(
            f"`--dynamic {self.text}`: expected {expected} at column {self.pos + 1}, found {found}; "
            "write entries like `x:0=batch[1,64]`, separated by commas (or `auto`)"
        )


def parse_dynamic(text: str | None) -> DynamicSpec:
    """Parse a `--dynamic` spec.

    Raises:
        InputSpecError: the spec is malformed; the message names the column of the bad character.

    Example:
        >>> parse_dynamic("x:0=batch[1,64]").entries[0]
        DimEntry(input='x', dim=0, name='batch', min=1, max=64)
    """
    if text is None or not text.strip():
        return DynamicSpec()
    text = text.strip()
    if text == "auto":
        return DynamicSpec(all_auto=True)
    scan = _Scanner(text)
    entries: list[DimEntry] = []
    while True:
        name_pattern = r"[A-Za-z_][A-Za-z0-9_]*"
        input_name = scan.take(name_pattern, "an input name")
        scan.take(":", "`:` after the input name")
        dim = int(scan.take(r"-?\d+", "a dim index"))
        scan.take("=", "`=` after the dim index")
        dim_name = scan.take(name_pattern, "a dim name or `auto`")
        low = high = None
        if scan.peek() == "[":
            if dim_name == "auto":
                raise scan.error("no range after `auto` (write NAME[min,max] for a range)")
            scan.pos += 1
            low = scan.optional_int()
            scan.take(",", "`,` between min and max")
            high = scan.optional_int()
            scan.take(r"\]", "`]` after the range")
            if low is not None and high is not None and low > high:
                raise InputSpecError(f"`--dynamic {text}`: empty range [{low},{high}]; write [min,max] with min <= max")
        entries.append(DimEntry(input_name, dim, dim_name, low, high))
        if scan.done():
            break
        scan.take(",", "`,` between entries")
    _check_consistent(text, entries)
    return DynamicSpec(tuple(entries))


def _check_consistent(text: str, entries: list[DimEntry]) -> None:
    bounds: dict[str, tuple[int | None, int | None]] = {}
    seen: set[tuple[str, int]] = set()
    for e in entries:
        if (e.input, e.dim) in seen:
            raise InputSpecError(f"`--dynamic {text}`: `{e.input}:{e.dim}` is given twice; keep one entry per dim")
        seen.add((e.input, e.dim))
        if e.is_auto:
            continue
        if e.name in bounds and (e.min, e.max) != bounds[e.name] and None not in (e.min, e.max) and None not in bounds[e.name]:
            raise InputSpecError(f"`--dynamic {text}`: `{e.name}` has two different ranges; a shared name is one Dim, give its range once")
        if e.min is not None or e.max is not None or e.name not in bounds:
            bounds[e.name] = (e.min, e.max)


def to_dynamic_shapes(spec: DynamicSpec, param_names: list[str], args: tuple, kwargs: dict) -> dict[str, Any] | None:
    """Build the `dynamic_shapes=` dict `torch.export.export` takes, keyed by forward parameter.

    Raises:
        InputSpecError: an entry names an input the model does not take, or a dim it lacks.
    """
    if not spec:
        return None
    bound = dict(zip(param_names, args))
    bound.update(kwargs)
    shapes: dict[str, Any] = {name: None for name in bound}
    if spec.all_auto:
        for name, value in bound.items():
            shapes[name] = _auto_for(value)
        return shapes
    dims: dict[str, Any] = {}
    ranges: dict[str, tuple[int | None, int | None]] = {}
    for e in spec.entries:
        if e.min is not None or e.max is not None:
            ranges[e.name] = (e.min, e.max)
    for e in spec.entries:
        if e.input not in bound:
            raise InputSpecError(
                f"`--dynamic {e}`: the model takes no input `{e.input}`; inputs are: {', '.join(bound) or 'none'}"
            )
        value = bound[e.input]
        if not isinstance(value, torch.Tensor):
            raise InputSpecError(f"`--dynamic {e}`: input `{e.input}` is a {type(value).__name__}, not a tensor")
        if not -value.dim() <= e.dim < value.dim():
            raise InputSpecError(f"`--dynamic {e}`: input `{e.input}` has {value.dim()} dims, so there is no dim {e.dim}")
        dim = e.dim % value.dim()
        if e.is_auto:
            obj = Dim.AUTO
        else:
            if e.name not in dims:
                low, high = ranges.get(e.name, (None, None))
                dims[e.name] = Dim(e.name, **({"min": low} if low is not None else {}), **({"max": high} if high is not None else {}))
            obj = dims[e.name]
        entry = shapes[e.input] or {}
        entry[dim] = obj
        shapes[e.input] = entry
    return shapes


def _auto_for(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return {i: Dim.AUTO for i in range(value.dim())} or None
    if isinstance(value, (list, tuple)):
        return type(value)(_auto_for(v) for v in value)
    if isinstance(value, dict):
        return {k: _auto_for(v) for k, v in value.items()}
    return None


def dynamic_shapes_code(spec: DynamicSpec) -> str:
    """The spec as paste-able Python: the `Dim` definitions and the `dynamic_shapes` dict."""
    lines = ["from torch.export import Dim"]
    defined: set[str] = set()
    per_input: dict[str, list[str]] = {}
    for e in spec.entries:
        if e.is_auto:
            per_input.setdefault(e.input, []).append(f"{e.dim}: Dim.AUTO")
            continue
        if e.name not in defined:
            kw = "".join(f", {k}={v}" for k, v in (("min", e.min), ("max", e.max)) if v is not None)
            lines.append(f"{e.name} = Dim({e.name!r}{kw})")
            defined.add(e.name)
        per_input.setdefault(e.input, []).append(f"{e.dim}: {e.name}")
    body = ", ".join(f"{name!r}: {{{', '.join(d)}}}" for name, d in per_input.items())
    lines.append(f"dynamic_shapes = {{{body}}}")
    return "\n".join(lines)
