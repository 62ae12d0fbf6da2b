"""The one driver: find the `if` behind a failing line, try the rules in order, splice the result into
the function's text. Text outside the replaced statements is kept byte for byte, so the diff shows
only what changed."""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass

import torch

from pt2kit.capture.capture import SourceLocation
from pt2kit.rewrite import analysis
from pt2kit.rewrite.refusal import Refusal, RefusalReason
from pt2kit.rewrite.rules import RULES, Replacement, RuleContext, item_to_tensor
from pt2kit.rewrite.text import GENERATED, drop_needless_clones


@dataclass(frozen=True)
class RewriteStep:
    """One branch turned into `torch.cond`.

    Attributes:
        rule: which rule did it (`if-else-return`, `early-return`, `assign`).
        function: the method rewritten, e.g. `Block.forward`.
        condition: the condition as written, e.g. `h.norm() > x.norm()`.
        location: the user's line (or, for a branch inside a generated one, the generated line).
    """

    rule: str
    function: str
    condition: str
    location: SourceLocation | None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}`if {self.condition}:` in {self.function} -> torch.cond ({self.rule})"

    def to_json(self) -> dict:
        return {"rule": self.rule, "function": self.function, "condition": self.condition,
                "location": self.location.to_json() if self.location else None}


@dataclass
class _Site:
    node: ast.stmt
    func: ast.FunctionDef
    block: list[ast.stmt]
    index: int
    in_loop: bool


def rewrite_function(
    text: str, line: int, *, location: SourceLocation | None, frame_locals: dict | None,
    module_attrs: dict[str, bool],
) -> tuple[str, Replacement] | Refusal:
    """Rewrite the branch at `line` of a function's source `text` (dedented, `def` on line 1).

    Args:
        text: the function's current source.
        line: 1-based line in `text` where capture failed.
        location: the user's location, for reports.
        frame_locals: the function's locals at the failure when the capture kept its frame.
        module_attrs: the module's attributes -> whether each is a tensor.

    Returns:
        (new text, the replacement made), or a `Refusal`.
    """
    tree = ast.parse(text)
    lines = text.splitlines()

    def refuse(reason: RefusalReason, detail: str) -> Refusal:
        return Refusal(reason, location, detail)

    site = _find_site(tree, line) or _conditional_expression_site(tree, line)
    if site is None:
        stmt = _statement_at(tree, line)
        kind = type(stmt).__name__.lower() if stmt is not None else "line"
        if isinstance(stmt, ast.While):
            return refuse(RefusalReason.NO_RULE, "a `while` loop on a tensor value; torch.cond does not loop")
        return refuse(RefusalReason.NO_RULE, f"the failing {kind} is not an `if` on a tensor value")
    node, func = site.node, site.func
    # a nested function's parameters are operands of a torch.cond made earlier: tensors
    env = _environment(func, node, frame_locals, module_attrs, tensor_params=func is not tree.body[0])
    item_changes = item_to_tensor(func, node.test, node.lineno)
    for old in item_changes:
        env.known[old.targets[0].id] = True
    taken = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    taken |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    ctx = RuleContext(func, site.block, site.index, site.in_loop, env, module_attrs, lines, taken, refuse)
    for rule in RULES:
        outcome = rule(node, ctx)
        if isinstance(outcome, Refusal):
            return outcome
        if outcome is not None:
            if getattr(node, GENERATED, False):
                outcome = dataclasses.replace(outcome, rule="conditional-expression", condition=ast.unparse(node.test))
            return drop_needless_clones(_splice(lines, site, outcome, item_changes)), outcome
    return refuse(RefusalReason.NO_RULE, "no rule fits this `if`")


def _environment(func, node, frame_locals, module_attrs, tensor_params) -> analysis.TypeEnv:
    if frame_locals is not None:
        env = analysis.TypeEnv()
        for name, value in frame_locals.items():
            env.bound.add(name)
            env.known[name] = isinstance(value, torch.Tensor)
        return env
    before = [s for s in func.body if s.end_lineno < node.lineno]
    env = analysis.infer_env(func, before, True, module_attrs)
    if not tensor_params:
        # a forward parameter with a number, string or bool default is a Python value
        params = func.args.args[len(func.args.args) - len(func.args.defaults):]
        for arg, default in zip(params, func.args.defaults):
            if isinstance(default, ast.Constant) and default.value is not None:
                env.known[arg.arg] = False
    return env


def _find_site(tree: ast.Module, line: int) -> _Site | None:
    """The innermost `if` whose condition spans `line`, or whose condition reads a value assigned
    from `.item()` on `line`."""
    best: _Site | None = None
    item_names: set[str] = set()

    def visit(block, func, in_loop):
        nonlocal best
        for index, stmt in enumerate(block):
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(stmt.body, stmt, False)
                continue
            if isinstance(stmt, ast.Assign) and stmt.lineno <= line <= stmt.end_lineno and func is not None:
                if any(isinstance(n, ast.Attribute) and n.attr == "item" for n in ast.walk(stmt.value)):
                    item_names.update(n.id for t in stmt.targets for n in ast.walk(t) if isinstance(n, ast.Name))
            if isinstance(stmt, ast.If) and func is not None:
                hit = stmt.test.lineno <= line <= stmt.test.end_lineno
                reads_item = item_names and stmt.lineno > line and any(
                    isinstance(n, ast.Name) and n.id in item_names for n in ast.walk(stmt.test))
                if hit or (reads_item and best is None):
                    best = _Site(stmt, func, block, index, in_loop)
            loops = isinstance(stmt, (ast.For, ast.While, ast.AsyncFor))
            for child in ("body", "orelse", "finalbody"):
                inner = getattr(stmt, child, None)
                if inner and isinstance(inner, list) and isinstance(inner[0], ast.stmt):
                    visit(inner, func, in_loop or loops)
            for handler in getattr(stmt, "handlers", []) or []:
                visit(handler.body, func, in_loop)

    visit(tree.body, None, False)
    return best


def _conditional_expression_site(tree: ast.Module, line: int) -> _Site | None:
    """`y = a if c else b` / `return a if c else b` on `line`, as the `if` statement it means (put in place
    of the statement in the parsed tree, so the rules see an ordinary `if`)."""
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for block, in_loop in _blocks(func.body, False):
            for index, stmt in enumerate(block):
                if not (stmt.lineno <= line <= stmt.end_lineno and isinstance(stmt, (ast.Assign, ast.Return))):
                    continue
                value = stmt.value
                if not isinstance(value, ast.IfExp):
                    continue
                def side(expr):
                    new = ast.Assign(stmt.targets, expr) if isinstance(stmt, ast.Assign) else ast.Return(expr)
                    setattr(new, GENERATED, True)
                    return new
                branch = ast.If(value.test, [side(value.body)], [side(value.orelse)])
                setattr(branch, GENERATED, True)
                ast.copy_location(branch, stmt)
                branch.end_lineno, branch.end_col_offset = stmt.end_lineno, stmt.end_col_offset
                ast.fix_missing_locations(branch)
                block[index] = branch
                return _Site(branch, func, block, index, in_loop)
    return None


def _blocks(block: list[ast.stmt], in_loop: bool):
    """Every statement list of a function body (not entering nested functions), with whether it is in a loop."""
    yield block, in_loop
    for stmt in block:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        loops = in_loop or isinstance(stmt, (ast.For, ast.While, ast.AsyncFor))
        for child in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, child, None)
            if inner and isinstance(inner, list) and isinstance(inner[0], ast.stmt):
                yield from _blocks(inner, loops)
        for handler in getattr(stmt, "handlers", []) or []:
            yield from _blocks(handler.body, in_loop)


def _statement_at(tree: ast.Module, line: int) -> ast.stmt | None:
    found = None
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and node.lineno <= line <= node.end_lineno:
            if found is None or node.lineno >= found.lineno and node.end_lineno <= found.end_lineno:
                found = node
    return found


def _splice(lines: list[str], site: _Site, replacement: Replacement, item_changes: dict) -> str:
    """Apply the replacement and the `.item()` edits to the text, bottom up."""
    first = site.block[site.index]
    last = site.block[site.index + replacement.consumed - 1]
    new_text = replacement.text
    if lines[first.lineno - 1][first.col_offset:].startswith("elif"):
        # an `elif` branch is the `else:` of the `if` above: its replacement stays inside that `else:`
        new_text = ["else:"] + [f"    {ln}" if ln.strip() else ln for ln in new_text]
    edits = [(first.lineno, last.end_lineno, first.col_offset, new_text)]
    for old, new in item_changes.items():
        edits.append((old.lineno, old.end_lineno, old.col_offset, ast.unparse(new).splitlines()))
    out = list(lines)
    for start, end, col, new_lines in sorted(edits, key=lambda e: -e[0]):
        indent = " " * col
        new = [(indent + ln) if ln.strip() else "" for ln in new_lines]
        before = out[start - 2].rstrip() if start > 1 else ""
        if new[0].lstrip().startswith("def ") and before and not before.endswith(":") and not before.lstrip().startswith("#"):
            new.insert(0, "")  # a blank line sets the branch functions off from the code above
        out[start - 1:end] = new
    return "\n".join(out) + "\n"
