"""`torch._check` lines for a data-dependent value, written in the user's names.

torch reports an expression in unbacked symbols (`((u1 + 5)//u1)`); these helpers map the symbols
back to the variables `.item()`/`.tolist()`/`int()` were bound to, and orient or pin the check with
the values the example actually produced (read by `line_values.values_at_lines`).
"""

from __future__ import annotations

import ast
import os
import re

from pt2kit.capture.capture import SourceLocation
from pt2kit.diagnose.classify import Finding
from pt2kit.diagnose.source_code import statement_at, value_bindings
from pt2kit.rewrite.analysis import loaded_names


class _IntToItem(ast.NodeTransformer):
    """`int(t)` / `float(t)` -> `t.item()`: Python's int() asks for a concrete value, `.item()` does not."""

    changed = False

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in ("int", "float") and len(node.args) == 1 \
                and not node.keywords and not isinstance(node.args[0], ast.Constant):
            self.changed = True
            return ast.Call(ast.Attribute(node.args[0], "item", ast.Load()), [], [])
        return node


def item_instead_of_int(loc: SourceLocation) -> str | None:
    ctx = statement_at(loc.file, loc.line)
    if ctx is None or not isinstance(ctx.statement, ast.Assign):
        return None
    rewriter = _IntToItem()
    new = rewriter.visit(ast.parse(ast.unparse(ctx.statement)))
    if not rewriter.changed:
        return None
    last = ctx.statement.end_lineno or loc.line
    return (f"# replaces lines {loc.line}-{last} of {os.path.basename(loc.file)}: int() needs a concrete number, "
            f".item() keeps it symbolic\n{ast.unparse(new)}")


_NEGATE = {">": "<=", "<": ">=", ">=": "<", "<=": ">", "==": "!=", "!=": "=="}


def python_expr(expr: str) -> str:
    """torch's sympy text as Python: `Eq(a, b)` -> `a == b`, `Ne(a, b)` -> `a != b`."""
    for name, op in (("Eq", "=="), ("Ne", "!=")):
        m = re.fullmatch(rf"{name}\((.+), (.+)\)", expr.strip())
        if m:
            return f"{m.group(1)} {op} {m.group(2)}"
    return expr.strip()


def check_code(f: Finding, loc: SourceLocation, line_values: dict) -> str | None:
    """`torch._check(...)` lines for a data-dependent expression, in the user's names.

    A relation (`u0 > 2`) is asserted the way the example went. Where torch needs a concrete number
    (`range(k)`, a split size), the value itself is pinned to the example's (`torch._check(k == 3)`),
    which export can use, unlike a pinned compound expression."""
    if not f.expr:
        return None
    ctx = statement_at(loc.file, loc.line)
    bindings = value_bindings(ctx.function if ctx else None, loc.line)
    read_here = [n for n in loaded_names([ctx.statement]) if n in bindings] if ctx else []
    names = read_here or list(bindings)
    symbols = list(dict.fromkeys(re.findall(r"\bu\d+\b", f.expr)))
    if not symbols or not names:
        return None
    mapping = {s: names[min(i, len(names) - 1)] for i, s in enumerate(sorted(symbols, key=lambda s: int(s[1:])))}
    expr = re.sub(r"\bu\d+\b", lambda m: mapping[m.group()], python_expr(f.expr))
    relation = re.search(r" (==|!=|<=|>=|<|>) ", expr)
    values = line_values.get((loc.file, loc.line), {})
    pinned = [n for n in dict.fromkeys(mapping.values()) if isinstance(values.get(n), int)]
    if relation:
        holds = _evaluate(expr, values)  # the example's own values beat torch's note of the result
        if holds is False or (holds is None and f.result.strip() == "False"):
            expr = expr.replace(relation.group(0), f" {_NEGATE[relation.group(1)]} ", 1)
        checks = [f"torch._check({expr})  # holds for the example; the program asserts it at run time"]
    elif pinned:
        checks = [f"torch._check({n} == {values[n]})  # the example's value: export needs a concrete number here, "
                  "so the program then accepts only this value (asserted at run time)" for n in pinned]
    elif f.result:
        checks = [f"torch._check({expr} == {f.result})  # the example's value; asserted at run time"]
    else:
        checks = [f"torch._check({expr} >= 0)"]
    defined = "\n".join(f"# {n} = {bindings[n]}" for n in dict.fromkeys(mapping.values()))
    return f"{defined}\n# add before line {loc.line}:\n" + "\n".join(checks)


def _evaluate(expr: str, values: dict) -> bool | None:
    """`expr` on the example's values, or None when it reads a name without one."""
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return None
    if any(n.id not in values for n in ast.walk(tree) if isinstance(n, ast.Name)):
        return None
    try:
        return bool(eval(compile(tree, "<check>", "eval"), {"__builtins__": {}}, dict(values)))
    except Exception:
        return None


__all__ = ["check_code", "item_instead_of_int", "python_expr"]
