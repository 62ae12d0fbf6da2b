"""What the rewrite rules need to know about a function: names read and written, where it returns,
whether a branch touches state outside itself, and which values are tensors.

Everything here reads the `ast` only; values seen at run time (the frame of a failed capture) come in
through `TypeEnv`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

# Tensor methods whose result is not a tensor (a Python number, a shape, a list).
NON_TENSOR_METHODS = frozenset({"item", "size", "dim", "numel", "tolist", "nelement", "ndimension", "element_size",
                                "is_contiguous", "is_floating_point", "data_ptr", "stride", "get_device"})
# Builtins that turn a tensor into a Python value.
NON_TENSOR_BUILTINS = frozenset({"int", "float", "bool", "len", "round", "str", "isinstance", "range", "tuple", "list"})
# Methods that return a view of their receiver: returning one from a torch.cond branch aliases an operand.
VIEW_METHODS = frozenset({"view", "view_as", "reshape", "reshape_as", "transpose", "t", "permute", "squeeze",
                          "unsqueeze", "expand", "expand_as", "narrow", "flatten", "unflatten", "detach", "contiguous",
                          "as_strided", "select", "unbind", "split", "chunk", "T", "mT", "real", "imag", "to", "type_as",
                          "float", "double", "half", "type", "movedim", "swapaxes", "diagonal", "unfold"})


def stored_names(nodes: list[ast.AST], *, nested: bool = False) -> list[str]:
    """Names bound by these statements, in order.

    By default the names this scope binds (what a `torch.cond` branch writes): assigned or deleted names and
    `def`/`class` names, not looking into nested functions, classes or lambdas. With `nested=True`, every name
    assigned anywhere below them, nested scopes included, but no deleted or `def` names (the locals
    `pt2kit.diagnose` offers as a branch's operands).
    """
    if nested:
        return _names_below(nodes, ast.Store)
    found: dict[str, None] = {}
    for node in _walk_local(nodes):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            found.setdefault(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.setdefault(node.name)
    return list(found)


def definitely_assigned(nodes: list[ast.stmt]) -> set[str]:
    """Names bound on every path through these statements (an `if` binds what both its sides bind)."""
    names: set[str] = set()
    for stmt in nodes:
        if isinstance(stmt, ast.If):
            names |= definitely_assigned(stmt.body) & definitely_assigned(stmt.orelse)
        elif isinstance(stmt, (ast.For, ast.While, ast.AsyncFor, ast.Try)):
            continue  # a loop may run zero times
        elif isinstance(stmt, ast.With):
            names |= definitely_assigned(stmt.body)
        else:
            names |= set(stored_names([stmt]))
    return names


def loaded_names(nodes: list[ast.AST]) -> list[str]:
    """Names read by these nodes, in order of first use, nested functions included (closures read too)."""
    return _names_below(nodes, ast.Load)


def _names_below(nodes: list[ast.AST], ctx: type[ast.expr_context]) -> list[str]:
    """Names used in `ctx` (read or assigned) anywhere below these nodes, nested scopes included, in order."""
    found: dict[str, None] = {}
    for root in nodes:
        for node in ast.walk(root):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ctx):
                found.setdefault(node.id)
    return list(found)


def read_before_write(nodes: list[ast.stmt]) -> set[str]:
    """Names these statements read before (or without) binding them: the values a branch needs from outside."""
    written: set[str] = set()
    needed: set[str] = set()

    def visit_expr(expr):
        for node in ast.walk(expr):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in written:
                needed.add(node.id)

    for stmt in nodes:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            if stmt.value is not None:
                visit_expr(stmt.value)
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if isinstance(stmt, ast.AugAssign):
                visit_expr(ast.Name(stmt.target.id, ast.Load()) if isinstance(stmt.target, ast.Name) else stmt.target)
            for t in targets:
                for node in ast.walk(t):
                    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                        written.add(node.id)
                    elif isinstance(node, ast.Name):
                        visit_expr(node)
                if not isinstance(t, ast.Name):
                    visit_expr(t)
        elif isinstance(stmt, ast.If):
            visit_expr(stmt.test)
            # conservatively: a name bound on one side only is not bound after the if
            needed |= read_before_write(stmt.body) - written
            needed |= read_before_write(stmt.orelse) - written
            both = set(stored_names(stmt.body)) & set(stored_names(stmt.orelse))
            written |= both
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            needed |= {n for n in loaded_names(stmt.body) if n not in written}
            written.add(stmt.name)
        else:
            visit_expr(stmt)
            written |= set(stored_names([stmt]))
    return needed


def always_returns(nodes: list[ast.stmt]) -> bool:
    """True when every path through these statements ends in `return` or `raise`."""
    for stmt in nodes:
        if isinstance(stmt, (ast.Return, ast.Raise)):
            return True
        if isinstance(stmt, ast.If) and always_returns(stmt.body) and always_returns(stmt.orelse):
            return True
        if isinstance(stmt, ast.With) and always_returns(stmt.body):
            return True
    return False


def contains_return(nodes: list[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Return) for n in _walk_local(nodes))


def returns_in_loop(nodes: list[ast.stmt]) -> ast.Return | None:
    """A `return` inside a `for`/`while` of these statements, if any."""
    for node in _walk_local(nodes):
        if isinstance(node, (ast.For, ast.While, ast.AsyncFor)):
            for inner in _walk_local(node.body + node.orelse):
                if isinstance(inner, ast.Return):
                    return inner
    return None


def loop_control(nodes: list[ast.stmt]) -> ast.stmt | None:
    """A `break`/`continue` of these statements that would leave an enclosing loop (not one of their own)."""
    def search(stmts):
        for stmt in stmts:
            if isinstance(stmt, (ast.Break, ast.Continue)):
                return stmt
            if isinstance(stmt, (ast.For, ast.While, ast.AsyncFor, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for child_block in ("body", "orelse", "finalbody", "handlers"):
                found = search(getattr(stmt, child_block, []) or [])
                if found:
                    return found
        return None
    return search(nodes)


def side_effect(nodes: list[ast.stmt], local: set[str]) -> ast.AST | None:
    """The first statement that changes state outside the branch: attribute assignment (`self.x = ...`),
    item assignment or an in-place method on a value the branch did not create, `global`/`nonlocal`."""
    for node in _walk_local(nodes):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            return node
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for t in targets:
                for sub in ast.walk(t):
                    if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, (ast.Store, ast.Del)):
                        return node
                    if isinstance(sub, ast.Subscript) and isinstance(sub.ctx, (ast.Store, ast.Del)) and _root_name(sub) not in local:
                        return node
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, root = node.func.attr, _root_name(node.func.value)
            mutating = (method.endswith("_") and not method.endswith("__")) or method in {"append", "extend", "insert", "update", "pop", "setdefault", "register_buffer"}
            if mutating and root not in local:
                return node
    return None


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _walk_local(nodes):
    """ast.walk over statements, not entering nested function or class bodies."""
    stack = list(reversed(list(nodes)))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


@dataclass
class TypeEnv:
    """Which names hold tensors where a branch starts.

    `known` comes from the frame of the failed capture when there is one (exact); otherwise
    names are judged from how they were bound (`infer`).
    """

    known: dict[str, bool] = field(default_factory=dict)   # name -> is a tensor
    bound: set[str] = field(default_factory=set)            # names that have a value at the branch

    def is_tensor(self, name: str) -> bool:
        return self.known.get(name, False)


def infer_env(func: ast.FunctionDef, before: list[ast.stmt], tensor_params: bool, module_attrs: dict[str, bool]) -> TypeEnv:
    """A `TypeEnv` from the source alone: parameters (tensors when `tensor_params`, e.g. a branch function's
    operands), then each assignment before the branch judged by its right-hand side."""
    env = TypeEnv()
    params = [a.arg for a in func.args.posonlyargs + func.args.args + func.args.kwonlyargs]
    for name in params:
        env.bound.add(name)
        env.known[name] = tensor_params and name != "self"
    for stmt in before:
        for node in _walk_local([stmt]):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                env.known[node.targets[0].id] = is_tensor_expr(node.value, env, module_attrs)
        env.bound |= set(stored_names([stmt]))
        for name in stored_names([stmt]):
            env.known.setdefault(name, True)
    return env


def is_tensor_expr(expr: ast.AST, env: TypeEnv, module_attrs: dict[str, bool]) -> bool:
    """Best judgement of whether `expr` evaluates to a tensor."""
    if isinstance(expr, ast.Constant):
        return False
    if isinstance(expr, ast.Name):
        return env.is_tensor(expr.id)
    if isinstance(expr, ast.Attribute):
        if isinstance(expr.value, ast.Name) and expr.value.id == "self":
            return module_attrs.get(expr.attr, False)
        return expr.attr not in {"shape", "ndim", "dtype", "device", "training"} and is_tensor_expr(expr.value, env, module_attrs)
    if isinstance(expr, ast.Subscript):
        return is_tensor_expr(expr.value, env, module_attrs)
    if isinstance(expr, ast.Call):
        func = expr.func
        if isinstance(func, ast.Name):
            return func.id not in NON_TENSOR_BUILTINS
        if isinstance(func, ast.Attribute):
            if func.attr in NON_TENSOR_METHODS:
                return False
            return True
        return True
    if isinstance(expr, (ast.BinOp,)):
        return is_tensor_expr(expr.left, env, module_attrs) or is_tensor_expr(expr.right, env, module_attrs)
    if isinstance(expr, ast.UnaryOp):
        return is_tensor_expr(expr.operand, env, module_attrs)
    if isinstance(expr, ast.Compare):
        if any(isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn)) for op in expr.ops):
            return False  # identity and membership tests are Python booleans
        return any(is_tensor_expr(e, env, module_attrs) for e in [expr.left, *expr.comparators])
    if isinstance(expr, ast.BoolOp):
        return any(is_tensor_expr(e, env, module_attrs) for e in expr.values)
    return False
