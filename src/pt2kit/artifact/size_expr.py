"""Size expressions read from a manifest (`2*s0 + 1`, `(s0//2)`, `Max(1, s0)`), parsed by a checked grammar.

A manifest is file text: nothing in it is evaluated as Python. `parse_size` reads an expression with
`ast.parse` and accepts only this grammar, refusing anything else with an `ArtifactError`:

    expr   := INT | SYMBOL | expr (+ | - | * | // | %) expr | -expr | (expr)
            | expr ** SMALL_INT | min(expr, expr, ...) | max(...) | Mod(expr, expr)

`min`/`max` may be written `Min`/`Max` and `%` as `Mod`/`PythonMod`: that is how torch prints sizes. Integers,
the text and the tree are bounded, so no expression can make pt2kit do unbounded work. The parsed `SizeExpr`
evaluates with Python ints and tells whether it is affine (`A*s0 + B`), which is how run-time inputs bind
derived dims; nothing here imports sympy.

    >>> parse_size("2*s0 + 1").evaluate({"s0": 4})
    9
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from typing import Mapping

from pt2kit.errors import ArtifactError

MAX_TEXT = 256  # characters in one expression
MAX_NODES = 64  # AST nodes in one expression
MAX_INT = 2**62  # the largest integer an expression may hold or reach (a size never comes near it)
MAX_POWER = 4  # `s0**2` is what torch writes for a flattened square; no larger exponent is a size
SYMBOL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_FUNCTIONS = {"min": "min", "Min": "min", "max": "max", "Max": "max", "Mod": "mod", "PythonMod": "mod"}
_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}


class _Refused(Exception):
    """Inside the parser: why a text is not a size expression."""


@dataclass(frozen=True, eq=False)
class SizeExpr:
    """A checked size expression. `symbols`: the size symbols it uses, sorted.

    Build one with `parse_size`; evaluate it with `evaluate`, or ask `affine` for `A*s + B` in one symbol.
    """

    text: str
    tree: ast.expr
    symbols: tuple[str, ...]

    @property
    def symbol(self) -> str | None:
        """The symbol when the whole expression is one symbol (`s0`), else None."""
        return self.tree.id if isinstance(self.tree, ast.Name) else None

    def evaluate(self, sizes: Mapping[str, int]) -> int | None:
        """The value with each symbol replaced by its size; None when a symbol has no size in `sizes`.

        Raises:
            ArtifactError: the value leaves the bounded integer range, or it divides by zero.
        """
        if any(s not in sizes for s in self.symbols):
            return None
        try:
            return _value(self.tree, sizes)
        except _Refused as exc:
            raise ArtifactError(f"size expression `{self.text}` cannot be evaluated at {dict(sizes)} ({exc})") from None

    def affine(self, known: Mapping[str, int]) -> tuple[dict[str, int], int] | None:
        """`({symbol: coefficient}, constant)` over the symbols not in `known`, or None when not affine in them.

        `8*s0 - 4` -> `({"s0": 8}, -4)`; `(s0//2)` -> None unless `s0` is known.
        """
        try:
            return _affine(self.tree, known)
        except _Refused:
            return None

    def __str__(self) -> str:
        return self.text


def parse_size(text: object, where: str = "a size") -> SizeExpr:
    """Parse `text` (from a manifest) as a size expression; see the module docstring for the grammar.

    Args:
        text: the expression, e.g. `2*s0 + 1`.
        where: names the field in the error, e.g. "input `x` dim 0".

    Raises:
        ArtifactError: not a string, too long, or anything outside the grammar (a call, an attribute, a string).
    """
    def refuse(why: str) -> ArtifactError:
        shown = repr(text) if not isinstance(text, str) or len(text) <= 60 else repr(text[:60] + "...")
        return ArtifactError(f"{where} in the pt2kit manifest is not a size expression: {shown} ({why}); "
                             "the file was modified or damaged, export the model again")

    if not isinstance(text, str):
        raise refuse(f"a {type(text).__name__}, expected a string")
    if len(text) > MAX_TEXT:
        raise refuse(f"longer than {MAX_TEXT} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise refuse("not arithmetic") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise refuse(f"more than {MAX_NODES} terms")
    try:
        _check(tree)
        symbols = tuple(sorted({n.id for n in nodes if isinstance(n, ast.Name) and n.id not in _FUNCTIONS}))
        if not symbols:
            _value(tree, {})  # a constant expression: bounded now, not at first use
    except _Refused as exc:
        raise refuse(str(exc)) from None
    return SizeExpr(text, tree, symbols)


@functools.lru_cache(maxsize=4096)
def parse_size_cached(text: str) -> SizeExpr:
    """`parse_size(text)`, remembered: the input check reads the same few expressions on every call."""
    return parse_size(text)


def _check(node: ast.AST) -> None:
    """Refuse every node outside the grammar."""
    if isinstance(node, ast.Constant):
        if type(node.value) is not int:
            raise _Refused(f"the constant {node.value!r:.40} is not an integer")
        if abs(node.value) > MAX_INT:
            raise _Refused(f"the integer {str(node.value)[:20]}... is too large for a size")
    elif isinstance(node, ast.Name):
        if not SYMBOL.match(node.id) or node.id in _FUNCTIONS or node.id.startswith("__"):
            raise _Refused(f"`{node.id}` is not a size symbol")
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise _Refused(f"the operator `{type(node.op).__name__}` is not arithmetic on sizes")
        _check(node.operand)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise _Refused(f"the operator `{type(node.op).__name__}` is not arithmetic on sizes")
        if isinstance(node.op, ast.Pow) and not (isinstance(node.right, ast.Constant) and type(node.right.value) is int
                                                 and 0 <= node.right.value <= MAX_POWER):
            raise _Refused(f"a power must be a literal integer from 0 to {MAX_POWER}")
        _check(node.left)
        _check(node.right)
    elif isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in _FUNCTIONS or node.keywords:
            raise _Refused("a call other than min, max or Mod")
        if len(node.args) < 2 or (_FUNCTIONS[name] == "mod" and len(node.args) != 2):
            raise _Refused(f"`{name}` with {len(node.args)} argument(s)")
        for arg in node.args:
            _check(arg)
    else:
        raise _Refused(f"`{type(node).__name__}` syntax is not part of a size expression")


def _bounded(value: int) -> int:
    if abs(value) > MAX_INT:
        raise _Refused("the value is too large for a size")
    return value


def _value(node: ast.expr, sizes: Mapping[str, int]) -> int:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return _bounded(int(sizes[node.id]))
    if isinstance(node, ast.UnaryOp):
        value = _value(node.operand, sizes)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Call):
        args = [_value(a, sizes) for a in node.args]
        kind = _FUNCTIONS[node.func.id]
        return min(args) if kind == "min" else max(args) if kind == "max" else _divide(args[0], args[1], "%")
    left, right = _value(node.left, sizes), _value(node.right, sizes)
    op = _BINARY[type(node.op)]
    if op in ("//", "%"):
        return _divide(left, right, op)
    if op == "**":
        result = 1
        for _ in range(right):  # at most MAX_POWER steps, each bounded
            result = _bounded(result * left)
        return result
    return _bounded(left + right if op == "+" else left - right if op == "-" else left * right)


def _divide(left: int, right: int, op: str) -> int:
    if right == 0:
        raise _Refused("division by zero")
    return left // right if op == "//" else left % right


def _affine(node: ast.expr, known: Mapping[str, int]) -> tuple[dict[str, int], int]:
    """Coefficients and constant of `node` over the symbols not in `known`; `_Refused` when not affine."""
    if isinstance(node, ast.Name) and node.id not in known:
        return {node.id: 1}, 0
    unknown = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id not in _FUNCTIONS and n.id not in known}
    if not unknown:
        return {}, _value(node, known)
    if isinstance(node, ast.UnaryOp):
        coeffs, const = _affine(node.operand, known)
        return ({k: -v for k, v in coeffs.items()}, -const) if isinstance(node.op, ast.USub) else (coeffs, const)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
        (lc, lk), (rc, rk) = _affine(node.left, known), _affine(node.right, known)
        if isinstance(node.op, ast.Mult):
            if lc and rc:
                raise _Refused("a product of unknown sizes")
            coeffs, scale = (lc, rk) if lc else (rc, lk)
            return {k: _bounded(v * scale) for k, v in coeffs.items()}, _bounded(lk * rk)
        sign = 1 if isinstance(node.op, ast.Add) else -1
        coeffs = dict(lc)
        for k, v in rc.items():
            coeffs[k] = coeffs.get(k, 0) + sign * v
        return {k: v for k, v in coeffs.items() if v}, _bounded(lk + sign * rk)
    raise _Refused("not affine in the unknown sizes")


__all__ = ["MAX_INT", "SYMBOL", "SizeExpr", "parse_size", "parse_size_cached"]
