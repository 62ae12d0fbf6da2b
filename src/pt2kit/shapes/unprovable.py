"""Guards torch cannot prove over the declared range, checked size by size.

Some constraint violations come with no suggested fix: torch generated a guard on a dynamic size
that it could not prove for the whole declared range, and has nothing to propose. Sometimes the
guard is simply true for every size (torch before 2.13 cannot prove `min(seq, 2*seq) == seq`, and
Bloom fails to export dynamic on it); sometimes it is false for some sizes (`seq % 7 != 3`).

The ranges pt2kit exports are bounded, so the question can be settled by counting: evaluate the
guard at every size in the range. When it holds everywhere, export again with torch's
`prefer_deferred_runtime_asserts_over_guards`, which keeps the guard as an assertion inside the
program instead of failing; it never fires in the declared range. When it fails somewhere, the
sizes where it fails are reported and nothing is deferred.

The guard is torch's own text (`min(L['input_ids'].size()[1], 2*L['input_ids'].size()[1]) == ...`).
It is parsed with `ast`, and only arithmetic, comparisons and a few named functions are evaluated.
"""

from __future__ import annotations

import ast
import itertools
import operator
import re
from dataclasses import dataclass

from pt2kit.shapes.spec import DynamicSpec

MAX_POINTS = 200_000  # sizes evaluated per guard; a larger range is not checked

_GUARD = re.compile(r"satisfy the generated guard (.+?)\.(?=\s|$)")
_SIZE = re.compile(r"L\['(\w+)'\]\.size\(\)\[(\d+)\]|L\['(\w+)'\]\.shape\[(\d+)\]|\b(\w+)\.shape\[(\d+)\]")
_FUNCTIONS = {
    "min": min, "max": max, "Min": min, "Max": max, "abs": abs, "Abs": abs,
    "Mod": operator.mod, "PythonMod": operator.mod, "FloorDiv": operator.floordiv,
    "Eq": operator.eq, "Ne": operator.ne,
}
_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Call, ast.Name, ast.Constant, ast.Load,
          ast.operator, ast.unaryop, ast.boolop, ast.cmpop)


@dataclass(frozen=True)
class GuardCheck:
    """One guard torch could not prove, and what evaluating it at every size in the range found."""

    guard: str  # in the spec's names: `min(seq, 2*seq) == seq`
    roots: tuple[str, ...]
    points: int  # sizes evaluated (0: not checked)
    failing: tuple[dict[str, int], ...] = ()  # the first few root values where it is false
    why_unchecked: str = ""

    @property
    def holds(self) -> bool:
        return self.points > 0 and not self.failing and not self.why_unchecked

    def __str__(self) -> str:
        if self.why_unchecked:
            return f"`{self.guard}` not checked: {self.why_unchecked}"
        if self.failing:
            at = ", ".join(" ".join(f"{k}={v}" for k, v in f.items()) for f in self.failing)
            return f"`{self.guard}` is false at {at}"
        return f"`{self.guard}` holds at each of the {self.points} sizes in the declared range"


def unprovable_guards(message: str) -> list[str]:
    """The guards a constraint violation says torch could not prove (torch's text, in order, no repeats)."""
    return list(dict.fromkeys(m.group(1).strip() for m in _GUARD.finditer(message)))


def check_guard(guard: str, spec: DynamicSpec) -> GuardCheck:
    """Evaluate `guard` at every combination of its roots' values in the spec's ranges."""
    entries = {(e.input, e.dim): e for e in spec.entries if not e.is_auto}
    names: dict[str, tuple[str, int, int]] = {}  # python variable -> (root, scale, offset)

    def substitute(match: re.Match) -> str:
        groups = [g for g in match.groups() if g is not None]
        entry = entries.get((groups[0], int(groups[1])))
        if entry is None:
            raise KeyError(f"{groups[0]}:{groups[1]}")
        var = f"_{entry.input}_{entry.dim}"
        names[var] = (entry.name, entry.scale, entry.offset)
        return var

    try:
        text = _SIZE.sub(substitute, guard)
    except KeyError as missing:
        return GuardCheck(guard, (), 0, why_unchecked=f"it reads dim {missing.args[0]}, which the spec does not name")
    readable = text
    for var, (root, scale, offset) in names.items():
        readable = readable.replace(var, _expression(root, scale, offset))
    try:
        tree = ast.parse(text, mode="eval")
        bad = next((n for n in ast.walk(tree) if not isinstance(n, _NODES)
                    or isinstance(n, ast.Constant) and type(n.value) not in (int, float, bool)), None)
        if bad is not None or any(isinstance(n, ast.Name) and n.id not in names and n.id not in _FUNCTIONS for n in ast.walk(tree)):
            raise SyntaxError("unsupported")
        code = compile(tree, "<guard>", "eval")
    except SyntaxError:
        return GuardCheck(readable, (), 0, why_unchecked="pt2kit cannot read this guard")
    roots = tuple(dict.fromkeys(root for root, _, _ in names.values()))
    ranges = spec.roots()
    spans = []
    for root in roots:
        low, high = ranges.get(root, (None, None))
        if high is None:
            return GuardCheck(readable, roots, 0, why_unchecked=f"`{root}` has no upper bound; give it one (`{root}[2,N]`)")
        spans.append(range(low if low is not None else 0, high + 1))
    total = 1
    for span in spans:
        total *= len(span)
    if total > MAX_POINTS:
        return GuardCheck(readable, roots, 0, why_unchecked=f"its range has {total:,} sizes (at most {MAX_POINTS:,} are checked)")
    failing = []
    for values in itertools.product(*spans):
        at = dict(zip(roots, values))
        scope = {var: scale * at[root] + offset for var, (root, scale, offset) in names.items()}
        try:
            holds = eval(code, {"__builtins__": {}, **_FUNCTIONS}, scope)  # noqa: S307 - an ast-checked arithmetic expression
        except (ArithmeticError, TypeError, ValueError) as exc:
            return GuardCheck(readable, roots, 0, why_unchecked=f"evaluating it at {at} raised {type(exc).__name__}")
        if not holds:
            failing.append(at)
            if len(failing) == 5:
                break
    return GuardCheck(readable, roots, total, tuple(failing))


def _expression(root: str, scale: int, offset: int) -> str:
    text = f"{scale}*{root}" if scale != 1 else root
    return f"({text} {'+' if offset > 0 else '-'} {abs(offset)})" if offset else text
