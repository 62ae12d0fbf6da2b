"""The rewrite rules. Each takes the failing node and a `RuleContext` and returns a `Replacement`,
a `Refusal` (torch.cond cannot express this branch, and why), or None (the rule does not apply).

    RULES (tried in order on an `if` whose condition could not be traced)
      refuse_inexpressible   side effects, return inside a loop, break/continue, partial returns
      if_else_return         if/else where both sides return          -> return torch.cond(...)
      early_return           if that returns, then the rest            -> return torch.cond(...)
      assign_branch          if [/else] that assigns variables         -> a, b = torch.cond(...)

    `item_to_tensor` (a function-wide rule) keeps `.item()` values used in a condition as tensors.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field

from pt2kit.rewrite import analysis
from pt2kit.rewrite.analysis import TypeEnv
from pt2kit.rewrite.naming import branch_names, unique
from pt2kit.rewrite.refusal import Refusal, RefusalReason
from pt2kit.rewrite.text import branch_lines

INDENT = "    "
_LINE_LENGTH = 110


@dataclass
class RuleContext:
    """Where the failing `if` sits: its function, the block holding it, and what is known about names."""

    func: ast.FunctionDef
    block: list[ast.stmt]
    index: int
    in_loop: bool
    env: TypeEnv
    module_attrs: dict[str, bool]
    source_lines: list[str]
    taken: set[str] = field(default_factory=set)
    refuse: Callable[[RefusalReason, str], Refusal] | None = None  # bound to the failing location

    @property
    def node(self) -> ast.If:
        return self.block[self.index]

    def loads_after(self, node: ast.stmt) -> set[str]:
        """Names read after `node` in its function, or anywhere in the loop that holds it."""
        names = set()
        for other in ast.walk(self.func):
            if isinstance(other, ast.Name) and isinstance(other.ctx, ast.Load) and other.lineno > node.end_lineno:
                names.add(other.id)
        if self.in_loop:
            for loop in ast.walk(self.func):
                if isinstance(loop, (ast.For, ast.While)) and loop.lineno <= node.lineno <= loop.end_lineno:
                    names |= set(analysis.loaded_names(loop.body))
        return names


@dataclass(frozen=True)
class Replacement:
    """Replace `ctx.block[index : index + consumed]` with `text` (lines at column 0)."""

    rule: str
    consumed: int
    text: list[str]
    condition: str


# ---------------------------------------------------------------- predicates

def tensor_predicate(test: ast.expr, ctx: RuleContext) -> ast.expr:
    """The condition as a boolean tensor expression torch.cond accepts: `.item()`/`float()`/`bool()`
    dropped, `and`/`or`/`not` as `&`/`|`/`~`, chained comparisons split, a bare tensor compared with 0."""

    def convert(node: ast.expr) -> ast.expr:
        node = strip_python_number(node)
        if isinstance(node, ast.BoolOp):
            # leading Python values keep `and`/`or` (short-circuit: `mask is not None and mask.any()`);
            # from the first tensor on, `&`/`|`, since `and` would call bool() on the tensor
            first = next((i for i, v in enumerate(node.values) if analysis.is_tensor_expr(v, ctx.env, ctx.module_attrs)), None)
            if first is None:
                return node
            op = ast.BitAnd() if isinstance(node.op, ast.And) else ast.BitOr()
            result = convert(node.values[first])
            for value in node.values[first + 1:]:
                result = ast.BinOp(result, op, convert(value))
            return ast.BoolOp(node.op, node.values[:first] + [result]) if first else result
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            if not analysis.is_tensor_expr(node.operand, ctx.env, ctx.module_attrs):
                return node
            return ast.UnaryOp(ast.Invert(), convert(node.operand))
        if isinstance(node, ast.Compare):
            node = ast.Compare(strip_python_number(node.left), node.ops, [strip_python_number(c) for c in node.comparators])
            if len(node.ops) > 1:
                parts = [ast.Compare(left, [op], [right]) for left, op, right in
                         zip([node.left, *node.comparators[:-1]], node.ops, node.comparators)]
                result = parts[0]
                for part in parts[1:]:
                    result = ast.BinOp(result, ast.BitAnd(), part)
                return result
            return node
        if _is_boolean_call(node) or not analysis.is_tensor_expr(node, ctx.env, ctx.module_attrs):
            return node
        return ast.Compare(node, [ast.NotEq()], [ast.Constant(0)])

    return convert(test)


def strip_python_number(node: ast.expr) -> ast.expr:
    """`t.item()`, `float(t)`, `bool(t)` -> `t` (int() truncates, so it stays)."""
    while True:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "item" and not node.args:
            node = node.func.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"float", "bool"} and len(node.args) == 1 and not node.keywords:
            node = node.args[0]
        else:
            return node


def _is_boolean_call(node: ast.expr) -> bool:
    if not isinstance(node, ast.Call):
        return False
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    # a helper named like a predicate (`self.is_large(x)`) returns a boolean tensor
    return name in {"any", "all", "isnan", "isinf", "isfinite", "is_nonzero", "logical_and", "logical_or", "logical_not",
                    "gt", "lt", "ge", "le", "eq", "ne", "greater", "less", "isclose", "allclose"} or \
        name.startswith(("is_", "has_", "should_", "can_"))


def item_to_tensor(func: ast.FunctionDef, test: ast.expr, before_line: int) -> dict[ast.stmt, ast.stmt]:
    """Assignments `s = t.item()` (or `float(t)`) before the `if` whose names the condition reads become
    `s = t`, so `s` stays a tensor in the condition and in the branches. Returns {old: new} statements."""
    wanted = {n.id for n in ast.walk(test) if isinstance(n, ast.Name)}
    blocked = _python_number_uses(func)
    changes: dict[ast.stmt, ast.stmt] = {}
    for stmt in ast.walk(func):
        if (isinstance(stmt, ast.Assign) and stmt.lineno < before_line and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id in wanted - blocked):
            value = strip_python_number(stmt.value)
            if value is not stmt.value:
                changes[stmt] = ast.copy_location(ast.Assign(stmt.targets, value, lineno=stmt.lineno), stmt)
    return changes


def _python_number_uses(func: ast.FunctionDef) -> set[str]:
    """Names used where only a Python number will do (range(), int(), a slice, a shape argument)."""
    names = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"range", "int", "len", "round", "print", "str", "format"}:
            names |= {n.id for arg in node.args for n in ast.walk(arg) if isinstance(n, ast.Name)}
        if isinstance(node, ast.Slice):
            names |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        if isinstance(node, ast.JoinedStr):
            names |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return names


# ---------------------------------------------------------------- statement rules

def refuse_inexpressible(node: ast.If, ctx: RuleContext) -> Refusal | None:
    """Branches torch.cond cannot express, whatever their shape."""
    raised = next((n for n in ast.walk(ast.Module(node.body + node.orelse, [])) if isinstance(n, ast.Raise)), None)
    if raised is not None:
        message = raised.exc.args[0] if isinstance(raised.exc, ast.Call) and raised.exc.args else ast.Constant("check failed")
        check = f"torch._assert_async(~({ast.unparse(tensor_predicate(node.test, ctx))}), {ast.unparse(message)})"
        detail = f"`{ast.unparse(raised)}` is a run-time check, which torch.cond cannot raise"
        return ctx.refuse(RefusalReason.RAISES, detail + (f"; write `{check}`" if node.body == [raised] and not node.orelse else ""))
    for side in (node.body, node.orelse):
        hit = analysis.side_effect(side, set(analysis.stored_names(side)))
        if hit is not None:
            return ctx.refuse(RefusalReason.SIDE_EFFECT, f"`{ast.unparse(hit).splitlines()[0]}` changes state outside the branch")
        ret = analysis.returns_in_loop(side)
        if ret is not None:
            return ctx.refuse(RefusalReason.RETURN_IN_LOOP, f"`{ast.unparse(ret)}` returns from inside a loop in the branch")
        if ctx.in_loop and analysis.contains_return(side):
            return ctx.refuse(RefusalReason.RETURN_IN_LOOP, "the branch returns from inside a loop")
        if ctx.in_loop and analysis.loop_control(side) is not None:
            stmt = analysis.loop_control(side)
            return ctx.refuse(RefusalReason.LOOP_CONTROL, f"`{ast.unparse(stmt)}` leaves the loop from inside the branch")
        if any(isinstance(n, (ast.Yield, ast.YieldFrom, ast.Await)) for n in ast.walk(ast.Module(side, []))):
            return ctx.refuse(RefusalReason.PARTIAL_RETURN, "the branch yields")
        if analysis.contains_return(side) and not analysis.always_returns(side):
            return ctx.refuse(RefusalReason.PARTIAL_RETURN, "the branch returns on some paths and falls through on others")
    return None


def if_else_return(node: ast.If, ctx: RuleContext) -> Replacement | None:
    """`if c: ...return a` / `else: ...return b` -> `return torch.cond(c, _if_c, _if_not_c, (ops,))`."""
    if not (node.orelse and analysis.always_returns(node.body) and analysis.always_returns(node.orelse)):
        return None
    # statements after an if whose both sides return never run
    return _returning_cond(node, ctx, node.body, node.orelse, len(ctx.block) - ctx.index, "if-else-return")


def early_return(node: ast.If, ctx: RuleContext) -> Replacement | None:
    """`if c: ...return a` then the rest of the function -> the rest becomes the false branch
    (and the mirror: the `else` returns, the rest follows the `if` side)."""
    rest = ctx.block[ctx.index + 1:]
    body_returns, else_returns = analysis.always_returns(node.body), analysis.always_returns(node.orelse)
    if body_returns == else_returns or not analysis.always_returns(rest):
        return None
    if ctx.in_loop:
        return None
    true_body = node.body if body_returns else node.body + rest
    false_body = node.orelse + rest if body_returns else node.orelse
    return _returning_cond(node, ctx, true_body, false_body, len(ctx.block) - ctx.index, "early-return")


def assign_branch(node: ast.If, ctx: RuleContext) -> Replacement | Refusal | None:
    """`if c: a = ...` [`else: a = ...`] -> `a = torch.cond(c, _if_c, _if_not_c, (ops,))`; a side that does not
    assign a variable passes its current value through."""
    if analysis.contains_return(node.body) or analysis.contains_return(node.orelse):
        return None
    assigned = [n for n in analysis.stored_names(node.body + node.orelse)]
    live = ctx.loads_after(node)
    outputs = [n for n in assigned if n in live]
    if not outputs:
        return ctx.refuse(RefusalReason.NO_OUTPUT, "the branch assigns nothing that is used afterwards")
    true_assigned, false_assigned = analysis.definitely_assigned(node.body), analysis.definitely_assigned(node.orelse)
    for name in outputs:
        if (name not in true_assigned or name not in false_assigned) and name not in ctx.env.bound:
            return ctx.refuse(RefusalReason.UNBOUND_OUTPUT, f"`{name}` is assigned on one side only and has no value before the `if`")
        if not _output_is_tensor(name, node, ctx):
            return ctx.refuse(RefusalReason.NON_TENSOR_OUTPUT, f"`{name}` is not a tensor; torch.cond branches return tensors only")
    passthrough = [n for n in outputs if n not in true_assigned or n not in false_assigned]
    operands = _operands(ctx, node.body + node.orelse, extra=passthrough)
    bad = _rebound_non_tensors(ctx, node.body + node.orelse, operands)
    if bad:
        return ctx.refuse(RefusalReason.NON_TENSOR_OUTPUT, f"the branch rebinds `{bad}`, which is not a tensor")
    result = ast.Tuple([ast.Name(n, ast.Load()) for n in outputs], ast.Load()) if len(outputs) > 1 else ast.Name(outputs[0], ast.Load())
    true_body = node.body + [ast.Return(result)]
    false_body = (node.orelse or []) + [ast.Return(result)]
    return _cond(node, ctx, true_body, false_body, operands, ", ".join(outputs), 1, "assign")


RULES = (refuse_inexpressible, if_else_return, early_return, assign_branch)


# ---------------------------------------------------------------- building the torch.cond

def _returning_cond(node, ctx, true_body, false_body, consumed, rule) -> Replacement | Refusal:
    operands = _operands(ctx, true_body + false_body)
    bad = _rebound_non_tensors(ctx, true_body + false_body, operands)
    if bad:
        return ctx.refuse(RefusalReason.NON_TENSOR_OUTPUT, f"the branch rebinds `{bad}`, which is not a tensor")
    return _cond(node, ctx, true_body, false_body, operands, None, consumed, rule)


def _operands(ctx: RuleContext, body: list[ast.stmt], extra=()) -> list[str]:
    """Tensors the branches read from outside (and values passed through), in the order they were bound."""
    needed = analysis.read_before_write(body) | set(extra)
    order = [a.arg for a in ctx.func.args.posonlyargs + ctx.func.args.args + ctx.func.args.kwonlyargs]
    order += analysis.stored_names(ctx.block[:ctx.index]) + analysis.stored_names(ctx.func.body)
    seen = list(dict.fromkeys(order + sorted(ctx.env.bound)))
    return [n for n in seen if n in needed and n in ctx.env.bound and ctx.env.is_tensor(n)]


def _rebound_non_tensors(ctx, body, operands) -> str | None:
    """A non-tensor name the branch both reads from outside and rebinds: a nested function cannot do that."""
    needed, stored = analysis.read_before_write(body), set(analysis.stored_names(body))
    for name in sorted(needed & stored):
        if name in ctx.env.bound and name not in operands:
            return name
    return None


def _output_is_tensor(name: str, node: ast.If, ctx: RuleContext) -> bool:
    """Whether a variable the branch assigns holds a tensor: known at the branch, or any of its
    assignments is a tensor expression (`y = x * 2`, then `y = y + 1`)."""
    if name in ctx.env.bound and ctx.env.is_tensor(name):
        return True
    values = [stmt.value for stmt in ast.walk(ast.Module(node.body + node.orelse, []))
              if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets)]
    if not values:
        return name not in ctx.env.bound  # bound by a loop or `with`: judge it a tensor unless known otherwise
    return any(analysis.is_tensor_expr(v, ctx.env, ctx.module_attrs) for v in values)


def _cond(node, ctx, true_body, false_body, operands, target, consumed, rule) -> Replacement:
    predicate = tensor_predicate(node.test, ctx)
    true_name, false_name = branch_names(node.test)
    true_name, false_name = unique(true_name, ctx.taken), unique(false_name, ctx.taken)
    args = ", ".join(operands)
    text: list[str] = []
    for name, body in ((true_name, true_body), (false_name, false_body)):
        text.append(f"def {name}({args}):")
        text += [INDENT + line for line in branch_lines(body, set(operands), ctx.source_lines)]
        text.append("")
    ops = "(" + args + ("," if len(operands) == 1 else "") + ")"
    head = "return " if target is None else f"{target} = "
    call = f"torch.cond({ast.unparse(predicate)}, {true_name}, {false_name}, {ops})"
    if len(head + call) + ctx.node.col_offset <= _LINE_LENGTH:
        text.append(head + call)
    else:  # one argument per line, as a formatter would
        text += [f"{head}torch.cond(", *(f"{INDENT}{a}," for a in (ast.unparse(predicate), true_name, false_name, ops)), ")"]
    return Replacement(rule, consumed, text, ast.unparse(node.test))
