"""A data-dependent `if` (or ternary, or `while`) rewritten as `torch.cond` (`while_loop`), as text.

The generated code replaces exactly the lines it names in its first comment, so it can be pasted
over them. Operands are the branch's free names that are parameters or earlier locals (`self`
and globals are closed over); outputs are the names either branch assigns. A branch that leaves
an output unchanged returns a `.clone()`, because `torch.cond` refuses outputs that alias inputs.
"""

from __future__ import annotations

import ast
import os
import re
import textwrap
from dataclasses import dataclass

from pt2kit.diagnose.source_code import local_names_before, names_loaded, names_stored, statement_at

_SPAN = re.compile(r"^# replaces lines (\d+)-(\d+) of (.+?):?$", re.MULTILINE)


@dataclass(frozen=True)
class BranchRewrite:
    """Replacement code for lines `first`..`last` of `file`."""

    file: str
    first: int
    last: int
    code: str

    def __str__(self) -> str:
        return f"# replaces lines {self.first}-{self.last} of {os.path.basename(self.file)}:\n{self.code}"


def replaced_span(fix: str) -> tuple[int, int] | None:
    """The line range a printed branch rewrite replaces (read back from its first comment)."""
    m = _SPAN.search(fix)
    return (int(m.group(1)), int(m.group(2))) if m else None


class _ValueOf(ast.NodeTransformer):
    """`t.item()`, `bool(t)`, `float(t)`, `int(t)` -> `t`: torch.cond takes a tensor predicate."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr == "item" and not node.args:
            return f.value
        if isinstance(f, ast.Name) and f.id in ("bool", "float", "int") and len(node.args) == 1 and not node.keywords:
            return node.args[0]
        return node


def predicate_text(test: ast.expr) -> str:
    return ast.unparse(_ValueOf().visit(ast.parse(ast.unparse(test), mode="eval").body))


def branch_rewrite(path: str, line: int) -> BranchRewrite | None:
    """The `torch.cond` (or `while_loop`) form of the branch at `path:line`; None if there is none."""
    ctx = statement_at(path, line)
    if ctx is None:
        return None
    stmt, fn = ctx.statement, ctx.function
    if isinstance(stmt, ast.If) and stmt.test.lineno <= line <= (stmt.test.end_lineno or line):
        return _if_rewrite(path, stmt, fn)
    if isinstance(stmt, ast.While) and stmt.test.lineno <= line <= (stmt.test.end_lineno or line):
        return _while_rewrite(path, stmt, fn)
    ternary = next((n for n in ast.walk(stmt) if isinstance(n, ast.IfExp) and n.lineno == line), None)
    if ternary is not None:
        return _ternary_rewrite(path, stmt, ternary, fn)
    return None


def _operands(fn, first_line: int, nodes: list[ast.AST], extra: list[str] = ()) -> list[str]:
    known = set(local_names_before(fn, first_line))
    wanted = names_loaded(nodes) + list(extra)
    return [n for n in dict.fromkeys(wanted) if n in known and n != "self"]


def _returns_at_end(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Return)


def _def(name: str, params: list[str], body: list[ast.stmt], tail: str | None) -> str:
    text = "\n".join(ast.unparse(s) for s in body) if body else ""
    if tail:
        text = f"{text}\n{tail}" if text else tail
    return f"def {name}({', '.join(params)}):\n{textwrap.indent(text or 'pass', '    ')}"


def _static_split(test: ast.expr) -> tuple[list[ast.expr], ast.expr]:
    """`mask is not None and mask.any()` -> ([mask is not None], mask.any()): checks Python can
    decide at trace time (`is`, `is not`, `isinstance`) stay a Python `if` around the cond."""
    if not (isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And)):
        return [], test
    static = [v for v in test.values if _is_static_check(v)]
    dynamic = [v for v in test.values if not _is_static_check(v)]
    if not static or not dynamic:
        return [], test
    return static, dynamic[0] if len(dynamic) == 1 else ast.BoolOp(ast.And(), dynamic)


def _is_static_check(node: ast.expr) -> bool:
    if isinstance(node, ast.Compare):
        return all(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops)
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("isinstance", "hasattr", "callable")


def _if_rewrite(path: str, stmt: ast.If, fn) -> BranchRewrite | None:
    static, dynamic = _static_split(stmt.test)
    if static:
        inner = ast.If(test=dynamic, body=stmt.body, orelse=stmt.orelse)
        ast.copy_location(inner, stmt)
        inner.end_lineno = stmt.end_lineno
        rewrite = _if_rewrite(path, inner, fn)
        if rewrite is None:
            return None
        guard = ast.unparse(static[0] if len(static) == 1 else ast.BoolOp(ast.And(), static))
        orelse = "\n".join(ast.unparse(s) for s in stmt.orelse)
        code = f"if {guard}:\n{textwrap.indent(rewrite.code, '    ')}"
        if orelse:
            code += f"\nelse:\n{textwrap.indent(orelse, '    ')}"
        return BranchRewrite(path, rewrite.first, rewrite.last, code)
    first, last = stmt.lineno, stmt.end_lineno or stmt.lineno
    true_body, false_body = list(stmt.body), list(stmt.orelse)
    pred = predicate_text(stmt.test)
    if _returns_at_end(true_body) and not false_body and fn is not None:
        # `if c: return a` followed by more code: the rest of the block is the false branch
        rest = [s for s in fn.body if s.lineno > last]
        if rest and _returns_at_end(rest):
            false_body, last = rest, rest[-1].end_lineno or rest[-1].lineno
    if _returns_at_end(true_body) and _returns_at_end(false_body):
        ops = _operands(fn, first, [stmt.test, *true_body, *false_body])
        code = "\n".join([
            _def("true_fn", ops, true_body, None), _def("false_fn", ops, false_body, None),
            f"return torch.cond({pred}, true_fn, false_fn, ({', '.join(ops)}{',' if len(ops) == 1 else ''}))",
        ])
        return BranchRewrite(path, first, last, code)
    outputs = list(dict.fromkeys(names_stored(true_body) + names_stored(false_body)))
    if not outputs:  # the branches only act by side effects (`out.append(x)`): torch.cond cannot express that
        return None
    ops = _operands(fn, first, [*true_body, *false_body], extra=outputs)
    fns = []
    for name, body in (("true_fn", true_body), ("false_fn", false_body)):
        assigned = set(names_stored(body))
        values = [o if o in assigned else f"{o}.clone()" for o in outputs]
        tail = f"return {values[0]}" if len(values) == 1 else f"return ({', '.join(values)})"
        fns.append(_def(name, ops, body, tail))
    target = outputs[0] if len(outputs) == 1 else ", ".join(outputs)
    call = f"torch.cond({pred}, true_fn, false_fn, ({', '.join(ops)}{',' if len(ops) == 1 else ''}))"
    return BranchRewrite(path, first, last, "\n".join(fns + [f"{target} = {call}"]))


def _ternary_rewrite(path: str, stmt: ast.stmt, node: ast.IfExp, fn) -> BranchRewrite:
    ops = _operands(fn, stmt.lineno, [node.body, node.orelse])
    params = ", ".join(ops)
    tuple_text = f"({params}{',' if len(ops) == 1 else ''})"
    call = (f"torch.cond({predicate_text(node.test)}, lambda {params}: {ast.unparse(node.body)}, "
            f"lambda {params}: {ast.unparse(node.orelse)}, {tuple_text})")
    source = ast.unparse(stmt).replace(ast.unparse(node), call, 1)
    return BranchRewrite(path, stmt.lineno, stmt.end_lineno or stmt.lineno, source)


def _while_rewrite(path: str, stmt: ast.While, fn) -> BranchRewrite:
    carried = list(dict.fromkeys(names_stored(stmt.body)))
    ops = _operands(fn, stmt.lineno, [stmt.test, *stmt.body], extra=carried)
    params = ", ".join(ops)
    values = ", ".join(o if o in carried else f"{o}.clone()" for o in ops)
    code = "\n".join([
        "from torch._higher_order_ops.while_loop import while_loop",
        f"def cond_fn({params}):\n    return {predicate_text(stmt.test)}",
        _def("body_fn", ops, list(stmt.body), f"return ({values}{',' if len(ops) == 1 else ''})"),
        f"{params}{',' if len(ops) == 1 else ''} = while_loop(cond_fn, body_fn, ({params}{',' if len(ops) == 1 else ''}))",
    ])
    return BranchRewrite(path, stmt.lineno, stmt.end_lineno or stmt.lineno, code)


__all__ = ["BranchRewrite", "branch_rewrite", "predicate_text", "replaced_span"]
