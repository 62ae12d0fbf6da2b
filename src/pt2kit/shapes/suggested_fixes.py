"""torch's "Suggested fixes:" block of a constraint violation, parsed into data.

torch prints each fix as a line of Python::

    batch = Dim('batch', min=6, max=32)     # a range
    feat = 16                               # a constant
    b2 = b1                                 # an equality
    m = 2*n                                 # a derived dim
    _b = Dim('_b', min=1, max=32)           # a new root, used by the next line
    b = 2*_b

`parse_suggested_fixes` turns them into `SuggestedFix` records; `pt2kit.shapes.repair` applies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class SuggestedFix:
    """One line of torch's "Suggested fixes:" block, parsed.

    Exactly one of: a range (`min`/`max`, from `Dim(...)`), a constant `value`, or a relation
    `scale*root + offset`.
    """

    name: str
    text: str
    min: int | None = None
    max: int | None = None
    value: int | None = None
    root: str | None = None
    scale: int = 1
    offset: int = 0

    @property
    def is_range(self) -> bool:
        return self.value is None and self.root is None


_DIM_FIX = re.compile(r"^(\w+) = Dim\('(\w+)'(?P<kw>.*)\)$")
_RELATION = re.compile(r"^(?:(?P<scale>\d+)\*)?(?P<root>[A-Za-z_]\w*)(?:\*(?P<scale2>\d+))?(?:\s*(?P<sign>[+-])\s*(?P<offset>\d+))?$")


def parse_suggested_fixes(message: str) -> list[SuggestedFix]:
    """The fixes in a constraint violation's "Suggested fixes:" block ([] when there is none).

    Example:
        >>> parse_suggested_fixes("...Suggested fixes:\\n  batch = Dim('batch', min=6, max=32)")[0].min
        6
    """
    if "Suggested fixes:" not in message:
        return []
    fixes = []
    for line in message.split("Suggested fixes:", 1)[1].splitlines():
        line = line.strip()
        if not line:
            if fixes:
                break
            continue
        if m := _DIM_FIX.match(line):
            kw = dict(re.findall(r"(min|max)=(-?\d+)", m["kw"]))
            fixes.append(SuggestedFix(m[1], line, min=int(kw["min"]) if "min" in kw else None,
                                      max=int(kw["max"]) if "max" in kw else None))
            continue
        name, sep, expr = line.partition(" = ")
        if not sep or not name.isidentifier():
            break  # the block is over
        expr = expr.strip()
        if re.fullmatch(r"-?\d+", expr):
            fixes.append(SuggestedFix(name, line, value=int(expr)))
        elif m := _RELATION.match(expr.replace(" ", "")):
            scale = int(m["scale"] or m["scale2"] or 1)
            offset = int(m["offset"] or 0) * (-1 if m["sign"] == "-" else 1)
            fixes.append(SuggestedFix(name, line, root=m["root"], scale=scale, offset=offset))
    return fixes


__all__ = ["SuggestedFix", "parse_suggested_fixes"]
