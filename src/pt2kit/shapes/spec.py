"""Dynamic shapes: the `--dynamic` grammar and its translation to `torch.export.Dim`.

Grammar (entries separated by commas)::

    x:0=batch[1,64]              dim 0 of input `x` is `Dim("batch", min=1, max=64)`
    x:0=batch,x:1=seq[1,512]     several dims; bounds are optional
    ids:0=batch,mask:0=batch     one name across inputs is one shared Dim
    x:0=batch[2,]  x:0=batch[,64] open bounds
    y:1=2*seq  y:1=seq+1         a derived dim: a fixed relation `A*ROOT+B` to another dim
    x:0=2*half[1,32]             a derived dim whose root appears nowhere else (range is the root's)
    x:0=auto                     `Dim.AUTO`: torch decides (dynamic or static)
    auto                         `Dim.AUTO` for every dim of every tensor input
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch.export import Dim

from pt2kit.capture.capture import auto_dynamic_shapes
from pt2kit.errors import InputSpecError


@dataclass(frozen=True)
class DimEntry:
    """One dynamic dim: `input:dim=name[min,max]` (`name` is `auto` for `Dim.AUTO`).

    A derived dim is `scale*name + offset` (`y:1=2*seq`); `min`/`max` are then the range of
    the root `name`, not of the derived size.
    """

    input: str
    dim: int
    name: str
    min: int | None = None
    max: int | None = None
    scale: int = 1
    offset: int = 0

    @property
    def is_auto(self) -> bool:
        return self.name == "auto"

    @property
    def is_derived(self) -> bool:
        return self.scale != 1 or self.offset != 0

    @property
    def expression(self) -> str:
        """The size as Python: `seq`, `2*seq`, `seq + 1`, `2*half - 1`."""
        text = f"{self.scale}*{self.name}" if self.scale != 1 else self.name
        if self.offset:
            text += f" {'+' if self.offset > 0 else '-'} {abs(self.offset)}"
        return text

    def size_for(self, root: int) -> int:
        """The size of this dim when its root is `root`."""
        return self.scale * root + self.offset

    def __str__(self) -> str:
        bounds = f"[{'' if self.min is None else self.min},{'' if self.max is None else self.max}]"
        expr = self.expression.replace(" ", "")
        return f"{self.input}:{self.dim}={expr}" + ("" if self.is_auto or (self.min is None and self.max is None) else bounds)

    def to_json(self) -> dict:
        return {"input": self.input, "dim": self.dim, "name": self.name, "min": self.min, "max": self.max,
                "scale": self.scale, "offset": self.offset}


@dataclass(frozen=True)
class DynamicSpec:
    """A parsed `--dynamic` value. `all_auto` is the bare `auto` form.

    Example:
        >>> spec = parse_dynamic("ids:0=batch[1,32],mask:0=batch")
        >>> print(spec.code())        # paste-able Python with Dim(...) calls
    """

    entries: tuple[DimEntry, ...] = ()
    all_auto: bool = False

    def __str__(self) -> str:
        return "auto" if self.all_auto else ",".join(map(str, self.entries))

    def __bool__(self) -> bool:
        return self.all_auto or bool(self.entries)

    def to_json(self) -> dict:
        return {"dynamic": str(self), "code": self.code(), "entries": [e.to_json() for e in self.entries]}

    def code(self) -> str:
        """The spec as paste-able Python (see `dynamic_shapes_code`)."""
        return dynamic_shapes_code(self)

    def dim_names(self) -> dict[tuple[str, int], str]:
        """(input, dim) -> the user's name for it, for the manifest (derived dims: their expression)."""
        return {(e.input, e.dim): e.expression for e in self.entries if not e.is_auto}

    def entry(self, input: str, dim: int) -> DimEntry | None:
        """The entry for `input:dim`, if the spec has one."""
        return next((e for e in self.entries if (e.input, e.dim) == (input, dim)), None)

    def roots(self) -> dict[str, tuple[int | None, int | None]]:
        """Each named root dim -> its (min, max), merged over the entries that give bounds."""
        found: dict[str, tuple[int | None, int | None]] = {}
        for e in self.entries:
            if e.is_auto:
                continue
            low, high = found.get(e.name, (None, None))
            found[e.name] = (e.min if e.min is not None else low, e.max if e.max is not None else high)
        return found

    def with_range(self, name: str, low: int | None, high: int | None) -> "DynamicSpec":
        """The spec with root `name`'s range set once (on its first entry) to [low, high]."""
        entries, placed = [], False
        for e in self.entries:
            if e.name == name and not e.is_auto:
                e = replace(e, min=None if placed else low, max=None if placed else high)
                placed = True
            entries.append(e)
        return DynamicSpec(tuple(entries), self.all_auto)

    def without(self, name: str) -> "DynamicSpec":
        """The spec with root `name` and every dim derived from it made static."""
        return DynamicSpec(tuple(e for e in self.entries if e.name != name), self.all_auto)

    def derive(self, name: str, root: str, scale: int, offset: int, root_range: tuple[int | None, int | None] | None = None) -> "DynamicSpec":
        """The spec with every dim of root `name` re-expressed as `scale*root + offset`."""
        entries = []
        for e in self.entries:
            if e.name == name and not e.is_auto:
                e = replace(e, name=root, min=None, max=None, scale=e.scale * scale, offset=e.scale * offset + e.offset)
            entries.append(e)
        spec = DynamicSpec(tuple(entries), self.all_auto)
        low, high = root_range if root_range is not None else spec.roots().get(root, (None, None))
        return spec.with_range(root, low, high)


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

    def maybe(self, pattern: str) -> str | None:
        m = re.compile(pattern).match(self.text, self.pos)
        if not m or not m.group():
            return None
        self.pos = m.end()
        return m.group()

    def optional_int(self) -> int | None:
        m = re.compile(r"\d*").match(self.text, self.pos)
        self.pos = m.end()
        return int(m.group()) if m.group() else None

    def error(self, expected: str, at: int | None = None) -> InputSpecError:
        pos = self.pos if at is None else at
        found = f"`{self.text[pos]}`" if pos < len(self.text) else "the end"
        return InputSpecError(
            f"`--dynamic {self.text}`: expected {expected} at column {pos + 1}, found {found}; "
            "write entries like `x:0=batch[1,64]` or `y:1=2*seq`, separated by commas (or `auto`)"
        )


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_LARGEST_SIZE = 2**63 - 1


def parse_dynamic(text: str | None) -> DynamicSpec:
    """Parse a `--dynamic` spec.

    Raises:
        InputSpecError: the spec is malformed; the message names the column of the bad character.

    Example:
        >>> parse_dynamic("x:0=batch[1,64]").entries[0]
        DimEntry(input='x', dim=0, name='batch', min=1, max=64, scale=1, offset=0)
    """
    if text is None or not text.strip():
        return DynamicSpec()
    text = text.strip()
    if text == "auto":
        return DynamicSpec(all_auto=True)
    scan = _Scanner(text)
    entries: list[DimEntry] = []
    while True:
        entries.append(_parse_entry(scan))
        if scan.done():
            break
        scan.take(",", "`,` between entries")
    _check_consistent(text, entries)
    return DynamicSpec(tuple(entries))


def _parse_entry(scan: _Scanner) -> DimEntry:
    input_name = scan.take(_NAME, "an input name")
    scan.take(":", "`:` after the input name")
    dim = int(scan.take(r"-?\d+", "a dim index"))
    scan.take("=", "`=` after the dim index")
    scale, offset = 1, 0
    if scan.peek().isdigit():
        scale = int(scan.take(r"\d+", "a multiplier"))
        scan.take(r"\*", "`*` after the multiplier (as in `2*seq`)")
    name_at = scan.pos
    dim_name = scan.take(_NAME, "a dim name or `auto`")
    if keyword.iskeyword(dim_name):
        raise scan.error(f"a dim name (`{dim_name}` is a Python keyword)", at=name_at)
    if scan.maybe(r"\*"):
        if scale != 1:
            raise scan.error("one multiplier only (write `2*seq`)", at=scan.pos - 1)
        scale = int(scan.take(r"\d+", "a multiplier after `*`"))
    sign = scan.maybe(r"[+-]")
    if sign:
        offset = int(scan.take(r"\d+", f"a number after `{sign}`")) * (1 if sign == "+" else -1)
    if dim_name == "auto" and (scale != 1 or offset):
        raise scan.error("a dim name (`auto` cannot be derived)", at=name_at)
    if scale == 0:
        raise scan.error("a multiplier of 1 or more", at=name_at - 2)
    low = high = None
    if scan.peek() == "[":
        if dim_name == "auto":
            raise scan.error("no range after `auto` (write NAME[min,max] for a range)")
        start = scan.pos
        scan.pos += 1
        low = scan.optional_int()
        scan.take(",", "`,` between min and max")
        high = scan.optional_int()
        scan.take(r"\]", "`]` after the range")
        if max(low or 0, high or 0) > _LARGEST_SIZE:
            raise InputSpecError(f"`--dynamic {scan.text}`: a bound at column {start + 1} is above {_LARGEST_SIZE} (the largest "
                                 "int64); leave the max open instead, e.g. `[2,]`")
        if low is not None and high is not None and low > high:
            raise InputSpecError(
                f"`--dynamic {scan.text}`: empty range [{low},{high}] at column {start + 1}; write [min,max] with min <= max"
            )
    return DimEntry(input_name, dim, dim_name, low, high, scale, offset)


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
            shapes[name] = auto_dynamic_shapes(value)
        return shapes
    roots: dict[str, Any] = {}
    derived: dict[tuple[str, int, int], Any] = {}
    ranges = spec.roots()
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
            if e.name not in roots:
                low, high = ranges.get(e.name, (None, None))
                roots[e.name] = Dim(e.name, **({"min": low} if low is not None else {}), **({"max": high} if high is not None else {}))
            obj = roots[e.name]
            if e.is_derived:
                key = (e.name, e.scale, e.offset)
                if key not in derived:
                    scaled = obj * e.scale if e.scale != 1 else obj
                    derived[key] = scaled + e.offset if e.offset else scaled
                obj = derived[key]
        entry = shapes[e.input] or {}
        entry[dim] = obj
        shapes[e.input] = entry
    return shapes


def dynamic_shapes_code(spec: DynamicSpec) -> str:
    """The spec as paste-able Python: the `Dim` definitions and the `dynamic_shapes` dict.

    Example:
        >>> print(dynamic_shapes_code(parse_dynamic("x:0=batch[1,64],y:0=2*batch")))
        from torch.export import Dim
        batch = Dim('batch', min=1, max=64)
        dynamic_shapes = {'x': {0: batch}, 'y': {0: 2*batch}}
    """
    if spec.all_auto:
        return "from torch.export import Dim\n# every dim of every tensor input: {i: Dim.AUTO for i in range(t.dim())}"
    lines = ["from torch.export import Dim"]
    per_input: dict[str, list[str]] = {}
    for name, (low, high) in spec.roots().items():
        kw = "".join(f", {k}={v}" for k, v in (("min", low), ("max", high)) if v is not None)
        lines.append(f"{name} = Dim({name!r}{kw})")
    for e in spec.entries:
        per_input.setdefault(e.input, []).append(f"{e.dim}: {'Dim.AUTO' if e.is_auto else e.expression}")
    body = ", ".join(f"{name!r}: {{{', '.join(d)}}}" for name, d in per_input.items())
    lines.append(f"dynamic_shapes = {{{body}}}")
    return "\n".join(lines)
