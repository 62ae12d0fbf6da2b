"""Branch outputs torch rejects, rewritten on torch's own verdict.

`torch.cond` branches may not return one of their inputs or a view of one (`return x`, `x.reshape(...)`,
`x[:2]`, `torch.transpose(x, 0, 1)`), and both sides must return tensors whose strides are in the same
order. The rules in `rules.py` clone the aliases they can see in the text; this rule acts when capture
still fails at a `torch.cond(...)` for one of these reasons (an alias made by a submodule or a helper,
say `self.dropout(x)` in eval mode, which returns its input): it finds the branch functions of that call
and rewrites their returns.

    OutputProblem.ALIAS    each returned tensor that is not already a copy   -> `value.clone()`
    OutputProblem.LAYOUT   each returned tensor                              -> `value.contiguous()`
                           (a `.clone()` becomes `.clone(memory_format=torch.contiguous_format)`)

A clone or a contiguous copy changes no value, so the equivalence check that follows still compares the
rewritten model with the original.
"""

from __future__ import annotations

import ast
import re
from enum import Enum


class OutputProblem(str, Enum):
    ALIAS = "clone-aliased-outputs"
    LAYOUT = "contiguous-outputs"


_ALIAS = re.compile(r"aliasing during higher order op tracing|input-to-output aliasing|output-to-output aliasing|"
                    r"aliases? (of|with) (the )?inputs?", re.I)
_LAYOUT = re.compile(r"sorted order of strides of the two branches|contiguousness of the two branches|"
                     r"output stride is not a simple accumulative multiplication", re.I)


def output_problem(message: str) -> OutputProblem | None:
    """Which problem a capture failure reports about a `torch.cond`'s outputs, if any."""
    if _ALIAS.search(message):
        return OutputProblem.ALIAS
    if _LAYOUT.search(message):
        return OutputProblem.LAYOUT
    return None


def rewrite_cond_outputs(text: str, line: int, problem: OutputProblem) -> tuple[str, str] | None:
    """Rewrite the returns of the branch functions of the `torch.cond` call at `line` of `text`.

    Args:
        text: a function's source (dedented, `def` on line 1).
        line: 1-based line of the failing statement that calls `torch.cond`.
        problem: what torch rejected.

    Returns:
        (new text, the call's predicate as written), or None when there is no such call, its branches are
        not functions defined in this text, or there is nothing left to change.
    """
    tree = ast.parse(text)
    call = _cond_call_at(tree, line)
    if call is None or len(call.args) < 3:
        return None
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.lineno < call.lineno}
    edits: list[tuple[ast.AST, ast.expr]] = []
    for branch in call.args[1:3]:
        if isinstance(branch, ast.Lambda):
            new = _fixed(branch.body, problem)
            if new is not None:
                edits.append((branch.body, new))
        elif isinstance(branch, ast.Name) and branch.id in functions:
            fresh = _fresh_names(functions[branch.id])
            for ret in _returns(functions[branch.id]):
                new = _fixed(ret.value, problem, fresh)
                if new is not None:
                    edits.append((ret.value, new))
    if not edits:
        return None
    return _apply(text, edits), ast.unparse(call.args[0])


def _cond_call_at(tree: ast.Module, line: int) -> ast.Call | None:
    """The innermost `torch.cond(...)` call spanning `line`, or in the statement that starts there."""
    best = None
    for node in ast.walk(tree):
        if _is_cond(node) and (node.lineno <= line <= node.end_lineno or _statement_line(tree, node) == line):
            if best is None or node.lineno >= best.lineno:
                best = node
    return best


def _statement_line(tree: ast.Module, call: ast.Call) -> int:
    """The first line of the statement holding `call` (a traceback may name that line, not the call's)."""
    for stmt in ast.walk(tree):
        if isinstance(stmt, ast.stmt) and not isinstance(stmt, (ast.FunctionDef, ast.If, ast.For, ast.While, ast.With)):
            if stmt.lineno <= call.lineno and call.end_lineno <= stmt.end_lineno:
                return stmt.lineno
    return call.lineno


def _returns(func: ast.FunctionDef) -> list[ast.Return]:
    """The function's own returns, not those of functions nested in it."""
    found: list[ast.Return] = []

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                continue
            if isinstance(child, ast.Return) and child.value is not None:
                found.append(child)
            visit(child)

    visit(func)
    return found


def _fresh_names(func: ast.FunctionDef) -> set[str]:
    """Names whose last assignment in the function's own body is arithmetic or a torch.cond: never an alias."""
    fresh: set[str] = set()
    for stmt in func.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            made = isinstance(stmt.value, (ast.BinOp, ast.UnaryOp, ast.Compare)) or _is_cond(stmt.value)
            (fresh.add if made else fresh.discard)(stmt.targets[0].id)
        else:
            for name in (n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)):
                fresh.discard(name)
    return fresh


def _fixed(expr: ast.expr, problem: OutputProblem, fresh: set[str] = frozenset()) -> ast.expr | None:
    """`expr` with each returned tensor rewritten; None when nothing changes."""
    if isinstance(expr, (ast.Tuple, ast.List)):
        items = [_fixed(e, problem, fresh) for e in expr.elts]
        if all(i is None for i in items):
            return None
        return type(expr)([new or old for new, old in zip(items, expr.elts)], ast.Load())
    if isinstance(expr, ast.Constant) or _is_method(expr, "clone") and problem is OutputProblem.ALIAS:
        return None
    if _is_cond(expr):
        return None  # a torch.cond's outputs are fresh and already merged
    if problem is OutputProblem.ALIAS:
        if isinstance(expr, (ast.BinOp, ast.UnaryOp, ast.Compare)) or isinstance(expr, ast.Name) and expr.id in fresh:
            return None  # arithmetic makes a new tensor
        return _method(expr, "clone")
    if _is_method(expr, "contiguous") or _is_method(expr, "clone") and expr.keywords:
        return None
    if _is_method(expr, "clone"):
        fmt = ast.keyword("memory_format", ast.Attribute(ast.Name("torch", ast.Load()), "contiguous_format", ast.Load()))
        return ast.Call(expr.func, [], [fmt])
    return _method(expr, "contiguous")


def _is_method(expr: ast.expr, name: str) -> bool:
    return isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == name


def _is_cond(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Call) and ast.unparse(expr.func) == "torch.cond"


def _method(expr: ast.expr, name: str) -> ast.Call:
    return ast.Call(ast.Attribute(expr, name, ast.Load()), [], [])


def _apply(text: str, edits: list[tuple[ast.expr, ast.expr]]) -> str:
    """Replace each old expression's text with the new one's, bottom up, leaving every other byte alone."""
    lines = text.splitlines()
    for old, new in sorted(edits, key=lambda e: (-e[0].lineno, -e[0].col_offset)):
        first, last = lines[old.lineno - 1], lines[old.end_lineno - 1]
        code = ast.unparse(new)
        if isinstance(new, ast.Tuple) and code.startswith("(") and not _parenthesized(lines, old):
            code = code[1:-1]
        merged = first[:old.col_offset] + code + last[old.end_col_offset:]
        lines[old.lineno - 1:old.end_lineno] = [merged]
    return "\n".join(lines) + "\n"


def _parenthesized(lines: list[str], node: ast.expr) -> bool:
    return lines[node.lineno - 1][node.col_offset:].startswith("(")


__all__ = ["OutputProblem", "output_problem", "rewrite_cond_outputs"]
