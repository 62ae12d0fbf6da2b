"""The fix `diagnose` prints for a branch on a tensor's value: exactly what `pt2kit export --fix` writes.

One mechanism per job: the branch is rewritten by the rewrite package's rule driver
(`pt2kit.rewrite.rewrite_function`) on the function holding it, found and typed the way `--fix`
finds it (`ModelPatch.locate`, `ModelPatch.module_attrs`, the failing frame's locals). The lines the
rewrite changed are printed under `# replaces lines A-B of FILE:`, indented like line A, so they can
be pasted over those lines. Some refusals only a capture of the rewrite shows (the two sides return
tensors of different shapes, or the rewrite does not match the original), so `--fix` itself
(`fix_model`) also runs once on a copy, and a branch it refuses is refused here too. A refusal comes
back as the driver's `Refusal` (reason, detail, manual options), and nothing claims `--fix` can apply it.

The driver refuses `while` loops (torch.cond does not loop); `while_loop_form` writes the
`torch._higher_order_ops.while_loop` form of such a loop, as a manual fix (tensors carried, the
condition one boolean tensor), checked like every printed fix: pasted into the model, it runs and exports.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
import textwrap
from dataclasses import dataclass
from typing import Any

import torch

from pt2kit import progress
from pt2kit.capture.capture import CaptureMode, SourceLocation
from pt2kit.diagnose.source_code import local_names_before, statement_at
from pt2kit.rewrite.analysis import loaded_names, stored_names
from pt2kit.rewrite.fix import FixResult, fix_model
from pt2kit.rewrite import ModelPatch, Refusal, RefusalReason, rewrite_function
from pt2kit.shapes.spec import DynamicSpec

_SPAN = re.compile(r"^# replaces lines (\d+)-(\d+) of (.+?):?$", re.MULTILINE)


@dataclass(frozen=True)
class BranchRewrite:
    """Replacement code for lines `first`..`last` of `file`, indented relative to line `first`.

    Attributes:
        file: the user's file.
        first, last: the 1-based lines replaced (inclusive).
        code: the new lines.
        rule: the rewrite rule that made it (`if-else-return`, `assign`, ...), or `while-loop`.
        needs_torch: the file does not import torch, which the code uses (printed as a module-level section).
    """

    file: str
    first: int
    last: int
    code: str
    rule: str
    needs_torch: bool = False

    def __str__(self) -> str:
        name = os.path.basename(self.file)
        head = f"# replaces lines {self.first}-{self.last} of {name}:"
        tail = [f"# add at module level of {name}:", "import torch"] if self.needs_torch else []
        return "\n".join([head, self.code] + tail)

    def to_json(self) -> dict:
        return {"file": self.file, "first": self.first, "last": self.last, "code": self.code, "rule": self.rule}


def replaced_span(fix: str) -> tuple[int, int] | None:
    """The line range a printed branch rewrite replaces (read back from its `# replaces lines` comment)."""
    m = _SPAN.search(fix)
    return (int(m.group(1)), int(m.group(2))) if m else None


class BranchRewriter:
    """Runs `--fix` on one model's branches, without changing the model.

    The code of each fix comes from the rule driver run on the original function (so each blocker's
    fix is paste-able on its own); whether `--fix` really applies it comes from one `fix_model` run
    on a copy (which also finds what only a capture of the rewrite shows: sides of different shapes).

    Example:
        >>> rewriter = BranchRewriter(model, args, kwargs, param_names=["x"])
        >>> outcome = rewriter.rewrite(location)   # a BranchRewrite, or the Refusal `--fix` reports
    """

    def __init__(self, module: torch.nn.Module, args: tuple, kwargs: dict, *, param_names: list[str],
                 spec: DynamicSpec | None = None, dynamic_shapes: Any = None, mode: str | CaptureMode = CaptureMode.AUTO,
                 frame_locals: dict[tuple[str, int], dict] | None = None):
        self._module, self._args, self._kwargs = module, args, kwargs
        self._param_names, self._spec, self._dynamic_shapes, self._mode = param_names, spec, dynamic_shapes, mode
        self._frame_locals = dict(frame_locals or {})
        self._patch: ModelPatch | None = None
        self._fixed: FixResult | None = None
        self._fix_error: str = ""

    def _model_patch(self) -> ModelPatch:
        if self._patch is None:  # one copy per diagnosis, made only when a branch needs it
            self._patch = ModelPatch(self._module)
        return self._patch

    def _fix_result(self) -> FixResult | None:
        """`--fix` run once on a copy; None when it crashed (the error is kept: a diagnosis never dies of it)."""
        if self._fixed is None and not self._fix_error:
            try:
                with progress.stage("diagnose: try export --fix on a copy"):
                    self._fixed = fix_model(self._module, self._args, self._kwargs, param_names=self._param_names,
                                            dynamic_shapes=self._dynamic_shapes, spec=self._spec, mode=self._mode)
            except Exception as e:  # noqa: BLE001 - reported as the refusal of every branch, not raised
                self._fix_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        return self._fixed

    def _fix_refusal(self, location: SourceLocation) -> Refusal | None:
        """What stopped `--fix` at `location` (or stopped a rewrite made there from being proven equivalent)."""
        result = self._fix_result()
        if result is None:
            return Refusal(RefusalReason.NO_RULE, location, f"`--fix` failed on a copy of the model ({self._fix_error})")
        here = (location.file, location.line)
        for refusal in result.left:
            if refusal.location is not None and (refusal.location.file, refusal.location.line) == here:
                return refusal
        rewritten = any(s.location is not None and (s.location.file, s.location.line) == here for s in result.steps)
        unproven = next((r for r in result.left if r.reason is RefusalReason.NOT_EQUIVALENT), None)
        return unproven if rewritten else None

    def rewrite(self, location: SourceLocation) -> BranchRewrite | Refusal:
        """The `torch.cond` rewrite `--fix` would make of the branch at `location`, or why it would not."""
        patch = self._model_patch()
        found = patch.locate(location)
        if found is None:
            return Refusal(RefusalReason.OUTSIDE_MODEL, location,
                           f"`{location.function}` is outside the model's classes and their modules")
        method, line = found
        outcome = rewrite_function(method.current, line, location=location,
                                   frame_locals=self._frame_locals.get((location.file, location.line)),
                                   module_attrs=patch.module_attrs(method.cls))
        if isinstance(outcome, Refusal):
            return outcome
        refused = self._fix_refusal(location)
        if refused is not None:
            return refused
        text, replacement = outcome
        if text.splitlines() == method.current.splitlines():
            return Refusal(RefusalReason.NO_RULE, location, "the rewrite left the function unchanged")
        first, last, code = _changed_lines(method.current, text)
        return BranchRewrite(method.file, method.first_line + first - 1, method.first_line + last - 1, code,
                             replacement.rule, method.function.__globals__.get("torch") is not torch)


def _changed_lines(old: str, new: str) -> tuple[int, int, str]:
    """(first, last, replacement): the 1-based lines of `old` that differ from `new`, and the lines of `new`
    that replace them, dedented to line `first`'s indentation (the span grows upwards until it is)."""
    a, b = old.splitlines(), new.splitlines()
    changes = [op for op in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if op[0] != "equal"]
    i1, i2 = min(op[1] for op in changes), max(op[2] for op in changes)
    j1, j2 = min(op[3] for op in changes), max(op[4] for op in changes)
    if i1 == i2:  # a pure insertion: replace the line above it too, so there is a line to paste over
        if i1 > 0:
            i1, j1 = i1 - 1, j1 - 1
        else:
            i2, j2 = i2 + 1, j2 + 1

    def indent(line: str) -> int:
        return len(line) - len(line.lstrip())

    while i1 > 0 and any(ln.strip() and indent(ln) < indent(a[i1]) for ln in b[j1:j2]):
        i1, j1 = i1 - 1, j1 - 1
    cut = indent(a[i1])
    code = "\n".join(ln[cut:] if ln.strip() else "" for ln in b[j1:j2])
    return i1 + 1, i2, code.strip("\n")


def while_loop_form(path: str, line: int, numbers: frozenset[str] = frozenset()) -> BranchRewrite | None:
    """The `while_loop` form of a `while` on a tensor value at `path:line` (a manual fix: `--fix` does not
    rewrite loops); None when `line` is not such a loop's condition, or its body cannot be carried over
    (`break`, `continue`, `return`, a nested function).

    `while_loop` carries tensors only, and its condition must be one boolean tensor: every carried value that
    was a Python number at the loop (`numbers`, from the eager run) becomes a tensor first, `and`/`or`/`not`
    become `torch.logical_and`/`logical_or`/`logical_not`, and `x += 1` in the body becomes `x = x + 1`
    (the body may not change its inputs in place)."""
    ctx = statement_at(path, line)
    if ctx is None or not isinstance(ctx.statement, ast.While):
        return None
    stmt, fn = ctx.statement, ctx.function
    if not stmt.test.lineno <= line <= (stmt.test.end_lineno or line) or stmt.orelse:
        return None
    if any(isinstance(n, (ast.Break, ast.Continue, ast.Return, ast.Yield, ast.FunctionDef, ast.Lambda, ast.Global, ast.Nonlocal))
           for s in stmt.body for n in ast.walk(s)):
        return None
    carried = list(dict.fromkeys(stored_names(stmt.body, nested=True)))
    known = set(local_names_before(fn, stmt.lineno))
    ops = [n for n in dict.fromkeys(loaded_names([stmt.test, *stmt.body]) + carried) if n in known and n != "self"]
    if not ops or not set(carried) <= set(ops):
        return None
    params = ", ".join(ops)
    packed = f"{params}{',' if len(ops) == 1 else ''}"
    # read-only values are carried too (as copies: while_loop's outputs may not alias its inputs)
    values = ", ".join(o if o in carried else f"{o}.clone()" for o in ops)
    body = [ast.unparse(_OutOfPlace().visit(s)) for s in stmt.body]
    body.append(f"return ({values}{',' if len(ops) == 1 else ''})")
    code = [
        "from torch._higher_order_ops.while_loop import while_loop",
        *[f"{n} = torch.tensor({n})  # while_loop carries tensors only" for n in ops if n in numbers],
        "",
        f"def cond_fn({params}):",
        f"    return {_tensor_predicate(stmt.test)}",
        "",
        f"def body_fn({params}):",
        textwrap.indent("\n".join(body), "    "),
        "",
        f"{packed} = while_loop(cond_fn, body_fn, ({packed}))",
    ]
    return BranchRewrite(path, stmt.lineno, stmt.end_lineno or stmt.lineno, "\n".join(code), "while-loop")


class _ValueOf(ast.NodeTransformer):
    """`t.item()`, `bool(t)`, `float(t)`, `int(t)` -> `t`, and `and`/`or`/`not` -> `torch.logical_*`:
    a loop condition must stay one boolean tensor (Python's `and` asks a tensor for its truth value)."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr == "item" and not node.args:
            return f.value
        if isinstance(f, ast.Name) and f.id in ("bool", "float", "int") and len(node.args) == 1 and not node.keywords:
            return node.args[0]
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        name = "logical_and" if isinstance(node.op, ast.And) else "logical_or"
        result = node.values[0]
        for value in node.values[1:]:
            result = _torch_call(name, result, value)
        return result

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        return _torch_call("logical_not", node.operand) if isinstance(node.op, ast.Not) else node


def _torch_call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(ast.Attribute(ast.Name("torch", ast.Load()), name, ast.Load()), list(args), [])


class _OutOfPlace(ast.NodeTransformer):
    """`x += y` -> `x = x + y`: in place, it would change the loop's input tensor."""

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        if not isinstance(node.target, ast.Name):
            return node
        value = ast.BinOp(ast.Name(node.target.id, ast.Load()), node.op, node.value)
        return ast.copy_location(ast.Assign([ast.Name(node.target.id, ast.Store())], value), node)


def _tensor_predicate(test: ast.expr) -> str:
    return ast.unparse(_ValueOf().visit(ast.parse(ast.unparse(test), mode="eval").body))


__all__ = ["BranchRewrite", "BranchRewriter", "replaced_span", "while_loop_form"]
