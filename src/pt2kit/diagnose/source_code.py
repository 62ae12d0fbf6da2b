"""The user's source around a blocker: the statement at a line, the function holding it, names.

Every fix pt2kit prints is built from these: a `torch.cond` needs the whole `if` statement and
the names its branches read and write; a `torch._check` needs the name `.item()` was bound to.
"""

from __future__ import annotations

import ast
import functools
import inspect
import linecache
from dataclasses import dataclass

from pt2kit.capture.capture import SourceLocation, is_user_file
from pt2kit.rewrite.analysis import stored_names

# in-place methods that change a tensor's metadata (shape, strides) rather than its values
METADATA_MUTATIONS = ("unsqueeze_", "squeeze_", "t_", "transpose_", "resize_", "resize_as_", "as_strided_",
                      "set_", "swapdims_", "swapaxes_")
# calls that turn a tensor into a Python value
VALUE_CALLS = ("item", "tolist")
VALUE_BUILTINS = ("int", "float", "bool")


@functools.lru_cache(maxsize=64)
def parse_file(path: str) -> ast.Module | None:
    text = "".join(linecache.getlines(path))
    try:
        return ast.parse(text) if text else None
    except SyntaxError:
        return None


def line_text(path: str, line: int) -> str:
    return linecache.getline(path, line).strip()


def location_at(path: str, line: int, function: str = "") -> SourceLocation:
    return SourceLocation(path, line, function, line_text(path, line))


@dataclass(frozen=True)
class StatementContext:
    """The innermost statement at a line and the function around it."""

    statement: ast.stmt
    function: ast.FunctionDef | ast.AsyncFunctionDef | None


def statement_at(path: str, line: int) -> StatementContext | None:
    """The innermost statement that starts on `line` (or spans it), with its enclosing function."""
    tree = parse_file(path)
    if tree is None:
        return None
    best: tuple[ast.stmt, ast.AST | None] | None = None

    def visit(node: ast.AST, function: ast.AST | None) -> None:
        nonlocal best
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt) and child.lineno <= line <= (child.end_lineno or child.lineno):
                if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or child.lineno == line:
                    best = (child, function)
                inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
                visit(child, inner)
            elif isinstance(child, ast.excepthandler):
                visit(child, function)

    visit(tree, None)
    return StatementContext(best[0], best[1]) if best else None


def is_branch_statement(ctx: StatementContext | None, line: int) -> bool:
    """True when the code at `line` decides control flow: an `if`/`elif`/`while` test or a ternary."""
    if ctx is None:
        return False
    stmt = ctx.statement
    if isinstance(stmt, (ast.If, ast.While)) and stmt.test.lineno <= line <= (stmt.test.end_lineno or line):
        return True
    return any(isinstance(n, ast.IfExp) for n in ast.walk(stmt) if getattr(n, "lineno", 0) == line)


def local_names_before(function: ast.AST | None, line: int) -> list[str]:
    """Parameters and names assigned before `line` in `function` (what a branch can take as operands)."""
    if function is None:
        return []
    args = function.args
    params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    earlier = [s for s in function.body if (s.end_lineno or s.lineno) < line]
    nested = [n for n in ast.walk(function) if isinstance(n, ast.stmt) and (n.end_lineno or n.lineno) < line]
    return list(dict.fromkeys(params + stored_names(earlier + nested, nested=True)))


def value_bindings(function: ast.AST | None, line: int) -> dict[str, str]:
    """Names bound before `line` from a tensor's value (`k = n.item()`, `a, b = t.tolist()`, `k = int(t)`),
    each with the expression text that produced it, in source order."""
    found: dict[str, str] = {}
    if function is None:
        return found
    assigns = [n for n in ast.walk(function) if isinstance(n, ast.Assign) and n.lineno < line]
    for node in sorted(assigns, key=lambda n: n.lineno):
        if _reads_value(node.value):
            for name in stored_names(node.targets, nested=True):
                found[name] = ast.unparse(node.value)
    return found


def _reads_value(expr: ast.AST) -> bool:
    for node in ast.walk(expr):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr in VALUE_CALLS:
                return True
            if isinstance(f, ast.Name) and f.id in VALUE_BUILTINS and node.args:
                return True
    return False


def forward_location(module) -> SourceLocation | None:
    """The `def forward(...)` line of the model: where inputs are declared."""
    try:
        fn = type(module).forward
        lines, first = inspect.getsourcelines(fn)
        path = inspect.getsourcefile(fn)
    except (TypeError, OSError):
        return None
    if not path or not is_user_file(path):  # nn.Sequential and friends: torch's forward, not the user's
        return None
    offset = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith(("def ", "async def "))), 0)
    return SourceLocation(path, first + offset, "forward", lines[offset].strip())


def definition_location(source_module, name: str) -> SourceLocation | None:
    """Where the target file defines `name` (`model = nn.Sequential(...)`, `def make():`, `class Net`)."""
    path = getattr(source_module, "__file__", None)
    tree = parse_file(path) if path else None
    if tree is None:
        return None
    for node in tree.body:
        names = stored_names(node.targets, nested=True) if isinstance(node, ast.Assign) else \
            [node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else []
        if name in names:
            return location_at(path, node.lineno, "<module>")
    return None


def return_location(module) -> SourceLocation | None:
    """The last `return` of the model's `forward`: where outputs are produced."""
    start = forward_location(module)
    if start is None:
        return None
    ctx = statement_at(start.file, start.line)
    fn = ctx.statement if ctx else None
    returns = [n for n in ast.walk(fn) if isinstance(n, ast.Return)] if fn is not None else []
    if not returns:
        return start
    last = max(returns, key=lambda n: n.lineno)
    return location_at(start.file, last.lineno, "forward")


__all__ = [
    "METADATA_MUTATIONS", "StatementContext", "definition_location", "forward_location", "is_branch_statement", "line_text",
    "local_names_before", "location_at", "parse_file", "return_location",
    "statement_at", "value_bindings",
]
