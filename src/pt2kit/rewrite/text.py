"""Branch bodies as text: the user's statements copied as written where untouched, unparsed where
changed, and `.clone()` on returned operands (torch.cond outputs may not alias its inputs) only where
still needed."""

from __future__ import annotations

import ast

from pt2kit.rewrite import analysis

GENERATED = "_pt2kit_generated"  # set on statements the driver made up (they have no text of their own)


def branch_lines(body: list[ast.stmt], operands: set[str], source_lines: list[str]) -> list[str]:
    """The branch's statements as text: original lines where untouched, returns of operands cloned
    (torch.cond outputs may not alias its inputs), `x += 1` on an operand as `x = x + 1` (a branch may not
    change its inputs in place)."""
    aliases = set(operands)
    lines: list[str] = []
    for stmt in body:
        fixed = _OutOfPlace(set(aliases)).visit(_copy(stmt))
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            if _aliases(stmt.value, aliases):
                aliases.add(name)
            else:
                aliases.discard(name)
        elif isinstance(stmt, (ast.AugAssign,)) and isinstance(stmt.target, ast.Name):
            aliases.discard(stmt.target.id)
        fixed = _CloneReturns(aliases).visit(fixed)
        lines += _comments_above(stmt, source_lines)
        lines += statement_text(stmt, source_lines) if ast.dump(fixed) == ast.dump(stmt) else _unparse(fixed)
    return lines


def _comments_above(stmt: ast.stmt, source_lines: list[str]) -> list[str]:
    """The comment lines right above a statement of the user's, so they move into the branch with it."""
    if getattr(stmt, "lineno", None) is None or getattr(stmt, GENERATED, False):
        return []
    found = []
    line = stmt.lineno - 2
    while line >= 0 and source_lines[line].strip().startswith("#"):
        found.insert(0, source_lines[line].strip())
        line -= 1
    return found


def _unparse(stmt: ast.stmt) -> list[str]:
    """A statement as text; a returned tuple without the parentheses `ast.unparse` adds."""
    if isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.Tuple) and stmt.value.elts:
        return ["return " + ", ".join(ast.unparse(e) for e in stmt.value.elts)]
    return ast.unparse(stmt).splitlines()


def _copy(node):
    return ast.parse(ast.unparse(node)).body[0]


def _aliases(expr: ast.expr, aliases: set[str]) -> bool:
    if isinstance(expr, ast.Name):
        return expr.id in aliases
    if isinstance(expr, ast.Subscript):
        return _aliases(expr.value, aliases)
    if isinstance(expr, ast.Attribute) and expr.attr in {"T", "mT", "real", "imag", "data"}:
        return _aliases(expr.value, aliases)
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr in analysis.VIEW_METHODS:
        if ast.unparse(expr.func.value) == "torch":  # `torch.reshape(x, ...)`: the function form of a view
            return bool(expr.args) and expr.func.attr in VIEW_FUNCTIONS and _aliases(expr.args[0], aliases)
        return _aliases(expr.func.value, aliases)
    return False


# torch functions that return a view of their first argument (`torch.reshape(x, s)` may be `x` itself)
VIEW_FUNCTIONS = frozenset({"reshape", "transpose", "t", "permute", "squeeze", "unsqueeze", "flatten", "unflatten", "narrow",
                            "select", "movedim", "swapaxes", "diagonal", "detach", "as_strided", "unbind", "split", "chunk"})


class _OutOfPlace(ast.NodeTransformer):
    """`x += y` -> `x = x + y` where `x` may still be an operand."""

    def __init__(self, aliases: set[str]):
        self.aliases = aliases

    def visit_FunctionDef(self, node):
        return node

    def visit_AugAssign(self, node):
        if isinstance(node.target, ast.Name) and node.target.id in self.aliases:
            value = ast.BinOp(ast.Name(node.target.id, ast.Load()), node.op, node.value)
            return ast.copy_location(ast.Assign([ast.Name(node.target.id, ast.Store())], value), node)
        return node


class _CloneReturns(ast.NodeTransformer):
    def __init__(self, aliases: set[str]):
        self.aliases = aliases

    def visit_FunctionDef(self, node):
        return node  # a nested function's returns are its own

    def visit_Return(self, node):
        if node.value is not None:
            node.value = self._fresh(node.value)
        return node

    def _fresh(self, expr):
        if isinstance(expr, (ast.Tuple, ast.List)):
            expr.elts = [self._fresh(e) for e in expr.elts]
            return expr
        if isinstance(expr, ast.Dict):
            expr.values = [self._fresh(v) for v in expr.values]
            return expr
        if _aliases(expr, self.aliases):
            return ast.Call(ast.Attribute(expr, "clone", ast.Load()), [], [])
        return expr


def statement_text(stmt: ast.stmt, source_lines: list[str]) -> list[str]:
    """A statement's original lines, dedented to column 0 (unparsed when it shares a line with another)."""
    if getattr(stmt, "lineno", None) is None or getattr(stmt, GENERATED, False):
        return _unparse(stmt)
    first = source_lines[stmt.lineno - 1]
    if first[:stmt.col_offset].strip() and not (isinstance(stmt, ast.If) and first.lstrip().startswith("elif")):
        return _unparse(stmt)
    lines = source_lines[stmt.lineno - 1:stmt.end_lineno]
    cut = stmt.col_offset
    lines = [line[cut:] if line[:cut].strip() == "" else line.lstrip() for line in lines]
    if isinstance(stmt, ast.If) and lines[0].startswith("elif"):
        lines[0] = lines[0][2:]  # an `elif` that became the whole else side is an `if` of its own
    return lines


def drop_needless_clones(text: str) -> str:
    """Drop `.clone()` from returns of generated branch functions (`_if_...`) where the value is no longer
    an operand: after a nested branch became `x = torch.cond(...)`, `return x.clone()` is just `return x`."""
    tree = ast.parse(text)
    lines = text.splitlines()
    edits: list[tuple[ast.Return, ast.Return]] = []
    for func in ast.walk(tree):
        if not (isinstance(func, ast.FunctionDef) and func.name.startswith("_if_")):
            continue
        aliases = {a.arg for a in func.args.args}
        for stmt in func.body:
            if isinstance(stmt, ast.Return) and stmt.value is not None:
                new = _unclone(stmt.value, aliases)
                if ast.dump(new) != ast.dump(stmt.value):
                    edits.append((stmt, ast.Return(new)))
                continue
            stored = set(analysis.stored_names([stmt]))
            # only a torch.cond's outputs are known fresh: a clone of anything else may have been added because
            # torch found an alias the text does not show (pt2kit.rewrite.cond_outputs)
            fresh = isinstance(stmt, ast.Assign) and _is_cond_call(stmt.value)
            aliases = (aliases - stored) if fresh else (aliases | stored)
    for old, new in sorted(edits, key=lambda e: -e[0].lineno):
        indent = " " * old.col_offset
        lines[old.lineno - 1:old.end_lineno] = [indent + ln for ln in _unparse(new)]
    return "\n".join(lines) + "\n"


def _is_cond_call(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Call) and ast.unparse(expr.func) == "torch.cond"


def _unclone(expr: ast.expr, aliases: set[str]) -> ast.expr:
    if isinstance(expr, ast.Tuple):
        return ast.Tuple([_unclone(e, aliases) for e in expr.elts], ast.Load())
    if (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "clone"
            and not expr.args and isinstance(expr.func.value, ast.Name) and expr.func.value.id not in aliases):
        return expr.func.value
    return expr
