"""For each blocker: a short explanation and the fix as paste-able Python specific to its line.

One function per kind, chosen from `_WRITERS`; each returns (explanation, fix, auto_fixable). A fix
is code whose sections say where they go (`fix_text`: `# replaces lines A-B of FILE:`, `# add before
line N of FILE:`, `# add at module level of FILE:`), so it can be pasted mechanically; the blocker
corpus test pastes each one and requires the model to run eagerly and export. Where no code can be
pasted that would run (an eager failure, an unknown error), the fix is advice: prose, no header.
`auto_fixable` is True exactly where `pt2kit export --fix` rewrites the branch: the branch fixes come
from `--fix`'s own rule driver and verdict (`branch_fix.BranchRewriter`); a refused branch says why,
with the refusal's manual options.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from pt2kit.capture.capture import SourceLocation
from pt2kit.diagnose.blockers import BlockerKind
from pt2kit.diagnose.classify import Finding
from pt2kit.diagnose.checks import check_code, item_instead_of_int, python_expr
from pt2kit.diagnose.branch_fix import BranchRewrite, BranchRewriter, while_loop_form
from pt2kit.diagnose.custom_op_fix import custom_op_wrapper
from pt2kit.diagnose.source_code import is_branch_statement, statement_at
from pt2kit.rewrite.analysis import loaded_names
from pt2kit.rewrite import Refusal
from pt2kit.shapes.spec import DimEntry, DynamicSpec, dynamic_shapes_code, to_dynamic_shapes


@dataclass(frozen=True)
class FixContext:
    """What the fix writers may look at besides the finding: the model, its inputs, the dynamic spec."""

    module: Any
    args: tuple
    kwargs: dict
    parameter_names: list[str]
    spec: DynamicSpec
    source: Any = None
    suggestions: tuple[str, ...] = ()
    zero_one_dims: tuple[str, ...] = field(default=())
    line_values: dict = field(default_factory=dict)  # (file, line) -> Python numbers in scope there
    statements: dict = field(default_factory=dict)  # (file, line) -> StatementValues (what a line read and produced)
    branches: BranchRewriter | None = None  # `--fix`'s rewrites of the model's branches (made here when None)


Written = tuple[str, str, bool]


def write_fix(finding: Finding, location: SourceLocation, context: FixContext) -> Written:
    """(explanation, fix, auto_fixable) for one merged finding at `location`."""
    return _WRITERS[finding.kind](finding, location, context)


def _rewrite(loc: SourceLocation, ctx: FixContext) -> BranchRewrite | Refusal:
    """`--fix`'s rewrite of the branch at `loc`, or its refusal."""
    branches = ctx.branches or BranchRewriter(
        ctx.module, ctx.args, ctx.kwargs, param_names=ctx.parameter_names, spec=ctx.spec,
        dynamic_shapes=to_dynamic_shapes(ctx.spec, ctx.parameter_names, ctx.args, ctx.kwargs))
    return branches.rewrite(loc)


def _refused(refusal: Refusal) -> str:
    """`--fix`'s reason for leaving a branch, and what to do by hand (one option a line)."""
    text = f"`pt2kit export --fix` does not rewrite it ({refusal.reason}): {refusal.detail.rstrip('.')}."
    return "\n".join([text] + [f"    option: {o}" for o in refusal.options])


def _branch(f: Finding, loc: SourceLocation, ctx: FixContext) -> Written:
    outcome = _rewrite(loc, ctx)
    why = ("Python decides this branch on a tensor's value, which export does not know while tracing; "
           "torch.cond keeps both sides in the graph.")
    if isinstance(outcome, BranchRewrite):
        return why, str(outcome), True
    found = statement_at(loc.file, loc.line)
    if found is not None and isinstance(found.statement, ast.While):
        why = ("A `while` loop whose trip count depends on a tensor's value; torch.cond does not loop, and "
               "`pt2kit export --fix` does not rewrite loops.")
        numbers = frozenset(ctx.line_values.get((loc.file, found.statement.lineno), {}))
        loop = while_loop_form(loc.file, loc.line, numbers)
        if loop is not None:
            return f"{why} `while_loop` keeps the loop in the graph, carrying tensors:", str(loop), False
        return why, _advice(loc, "rewrite the loop with `torch._higher_order_ops.while_loop.while_loop(cond_fn, "
                                 "body_fn, carried)` (tensors carried, the condition one boolean tensor), or bound "
                                 "its trip count and loop a fixed number of times"), False
    fix = check_code(f, loc, ctx.line_values) or _advice(loc, outcome.options[0])
    return f"{why} {_refused(outcome)}", fix, False


def _value(f: Finding, loc: SourceLocation, ctx: FixContext) -> Written:
    why = ("A tensor's value becomes a Python number here (`.item()`, `.tolist()`, `int()`) and is then used "
           "where export needs to know it (a size, a count, a comparison); tell export what holds with torch._check.")
    code = item_instead_of_int(loc) or check_code(f, loc, ctx.line_values)
    if code is None:
        code = _advice(loc, "bound the value with torch._check before this line, e.g. "
                            "`torch._check(k >= 0)` and `torch._check(k <= x.shape[0])`")
    auto = is_branch_statement(statement_at(loc.file, loc.line), loc.line) and isinstance(_rewrite(loc, ctx), BranchRewrite)
    return why, code, auto


def _operator(f: Finding, loc: SourceLocation, ctx: FixContext) -> Written:
    op = f.op or "namespace::op"
    why = (f"`{op}` has no fake (meta) kernel, so export cannot tell the shape of its output without running it; "
           "register one that computes output shapes and dtypes only.")
    return why, fake_kernel_stub(op), False


def fake_kernel_stub(op: str) -> str:
    """A `@torch.library.register_fake` stub with the operator's own parameter names."""
    params, outputs = ["*args"], "torch.empty_like(args[0])"
    try:
        ns, name = op.split("::")
        packet = getattr(getattr(torch.ops, ns), name)
        schema = getattr(packet, packet.overloads()[0])._schema
        params = [a.name for a in schema.arguments]
        tensors = [a.name for a in schema.arguments if str(a.type).startswith("Tensor")]
        like = f"torch.empty_like({tensors[0]})" if tensors else "torch.empty(())"
        outs = [f"[{like}]" if str(r.type).startswith("List") else like for r in schema.returns]
        outputs = outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ")"
    except (ValueError, AttributeError, RuntimeError, IndexError):
        pass
    return "\n".join([
        "# add at module level of the file that defines or imports the operator:",
        f"@torch.library.register_fake({op!r})",
        f"def _({', '.join(params)}):",
        "    # shapes and dtypes only, no data: make each output the size the real kernel returns",
        f"    return {outputs}",
    ])


def _shape_violation(f: Finding, loc: SourceLocation, ctx: FixContext) -> Written:
    spec, extra = apply_suggestions(ctx.spec, ctx.suggestions)
    why = (f"The dims declared dynamic do not allow what this line needs (`{python_expr(f.expr) or f.message}`); "
           "narrow or correct the declared dims as torch suggests")
    parts = []
    branch = is_branch_statement(statement_at(loc.file, loc.line), loc.line)
    rewrite = _rewrite(loc, ctx) if branch else None
    if isinstance(rewrite, BranchRewrite):
        why += ", or keep both sides of the branch with torch.cond"
        parts.append("# either keep every size and both sides of the branch:\n" + str(rewrite))
        parts.append("# or narrow the dims to the side the example took:")
    why += "."
    if isinstance(rewrite, Refusal):
        why += f" {_refused(rewrite)}"
    parts.append(_dims_code(spec, extra))
    return why, "\n".join(parts), isinstance(rewrite, BranchRewrite)


def apply_suggestions(spec: DynamicSpec, suggestions: tuple[str, ...]) -> tuple[DynamicSpec, list[str]]:
    """torch's suggested fixes (`batch = 4`, `b = a`, `batch = Dim('batch', min=6)`) applied to `spec`."""
    entries = list(spec.entries)
    extra: list[str] = []
    for line in suggestions:
        name, _, rhs = (s.strip() for s in line.partition("="))
        if re.fullmatch(r"-?\d+", rhs):
            entries = [e for e in entries if e.name != name]
        elif rhs.isidentifier():
            entries = [dataclasses.replace(e, name=rhs) if e.name == name else e for e in entries]
        elif rhs.startswith("Dim("):
            low = re.search(r"min=(\d+)", rhs)
            high = re.search(r"max=(\d+)", rhs)
            entries = [dataclasses.replace(e, min=int(low.group(1)) if low else None, max=int(high.group(1)) if high else None)
                       if e.name == name else e for e in entries]
        else:
            extra.append(line)
    return DynamicSpec(tuple(entries), spec.all_auto), extra


def _dims_code(spec: DynamicSpec, extra: list[str]) -> str:
    lines = ["# add at module level of the model's file (pass it as `dynamic_shapes=`):"]
    if not spec.entries:
        lines += ["# every dim static: pass no dynamic_shapes", "dynamic_shapes = None"]
    else:
        lines += [dynamic_shapes_code(spec)]
    lines += extra
    lines.append(f"# pt2kit: --dynamic {spec}" if spec else "# pt2kit: drop --dynamic")
    return "\n".join(lines)


def _zero_one(f: Finding, loc: SourceLocation, ctx: FixContext) -> Written:
    marked = [e for e in ctx.spec.entries if e.name in ctx.zero_one_dims] or list(ctx.spec.entries)
    where = ", ".join(f"{e.input}.shape[{e.dim}]" for e in marked) or "a dynamic dim"
    why = (f"The example has size 0 or 1 for {where}, declared dynamic; export specializes sizes 0 and 1, "
           "so the dim cannot stay dynamic. Export with an example of size 2 or more there.")
    bound = dict(zip(ctx.parameter_names, ctx.args))
    widened = {(e.input, e.dim % max(getattr(bound.get(e.input), "dim", lambda: 1)(), 1)) for e in marked}
    lines = []
    for name, value in bound.items():
        if isinstance(value, torch.Tensor):
            shape = [2 if (name, d) in widened and s < 2 else s for d, s in enumerate(value.shape)]
            maker = "torch.randn" if value.is_floating_point() else "torch.zeros"
            dtype = "" if value.is_floating_point() and value.dtype == torch.float32 else f", dtype={value.dtype}"
            lines.append(f"{maker}({', '.join(map(str, shape))}{dtype})")
        else:
            lines.append(repr(value))
    args = ", ".join(lines) + ("," if len(lines) == 1 else "")
    code = (f"# add at module level of {_basename(ctx)}:\nexample_args = ({args})  # {where} >= 2\n"
            f"{dynamic_shapes_code(ctx.spec)}")
    return why, code, False


def _mutation(f: Finding, loc: SourceLocation, ctx: FixContext) -> Written:
    why = ("This line changes an input in place in a way export cannot record (a view or metadata change of a "
           "graph input) or returns an alias of it; work on a new tensor instead.")
    found = statement_at(loc.file, loc.line)
    if found is None:
        return why, _advice(loc, "work on a copy (`x = x.clone()`) before changing it, or use the out-of-place op"), False
    text, name = ast.unparse(found.statement), os.path.basename(loc.file)
    span = f"# replaces lines {found.statement.lineno}-{found.statement.end_lineno or found.statement.lineno} of {name}:"
    m = re.fullmatch(r"(\w+)\.(\w+)_\((.*)\)", text)
    if m:
        code = f"{span}\n{m.group(1)} = {m.group(1)}.{m.group(2)}({m.group(3)})  # out-of-place: no input is modified"
    elif text.startswith("return "):
        code = f"{span}\nreturn ({text.removeprefix('return ')}).clone()  # a new tensor, not an alias of the input"
    else:
        var = next(iter(loaded_names([found.statement])), "x")
        code = f"# add before line {found.statement.lineno} of {name}:\n{var} = {var}.clone()  # modify a copy, not the input"
    return why, code, False


def _pytree(f: Finding, loc: SourceLocation, ctx: FixContext) -> Written:
    cls = find_type(f.type_name, ctx)
    name = cls.__name__ if cls else (f.type_name.rsplit(".", 1)[-1] or "MyType")
    qual = f"{_module_name(cls, ctx)}.{cls.__qualname__}" if cls else f.type_name or name
    why = (f"`{name}` is passed in or returned, but torch.export only flattens pytrees (tensors, numbers, "
           "lists, tuples, dicts, registered types); register it so export can see the tensors inside.")
    head = f"# add at module level of {_basename(ctx)} (after `class {name}`):"
    if cls is not None and dataclasses.is_dataclass(cls):
        return why, f"{head}\ntorch.export.register_dataclass({name}, serialized_type_name={qual!r})", False
    low = name.lower()
    code = "\n".join([
        head,
        "from torch.utils._pytree import GetAttrKey, register_pytree_node",
        "",
        "",
        f"def _flatten_{low}(obj):",
        "    return list(vars(obj).values()), list(vars(obj))",
        "",
        "",
        f"def _flatten_{low}_with_keys(obj):  # export names each leaf by its attribute",
        "    return [(GetAttrKey(k), v) for k, v in vars(obj).items()], list(vars(obj))",
        "",
        "",
        f"def _unflatten_{low}(values, names):",
        f"    obj = object.__new__({name})",
        "    obj.__dict__.update(zip(names, values))",
        "    return obj",
        "",
        "",
        f"register_pytree_node({name}, _flatten_{low}, _unflatten_{low}, serialized_type_name={qual!r},",
        f"                     flatten_with_keys_fn=_flatten_{low}_with_keys)",
    ])
    return why, code, False


def _module_name(cls: type, ctx: FixContext) -> str:
    """The class's module as the user knows it (pt2kit imports a target file under a synthetic name)."""
    module = cls.__module__
    path = getattr(ctx.source, "__file__", None)
    if module.startswith("pt2kit_target_") and path:
        return re.sub(r"\W", "_", path.rsplit("/", 1)[-1].removesuffix(".py"))
    return module


def find_type(type_name: str, ctx: FixContext, inputs_only: bool = False) -> type | None:
    """The class named in a pytree error, from the inputs, the model's module, or its file."""
    short = type_name.rsplit(".", 1)[-1]
    stack: list[Any] = list(ctx.args) + list(ctx.kwargs.values())
    while stack:
        value = stack.pop()
        if type(value).__name__ == short and not isinstance(value, (torch.Tensor, list, tuple, dict)):
            return type(value)
        if isinstance(value, (list, tuple)):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
    if inputs_only:
        return None
    for holder in (ctx.source, __import__("sys").modules.get(type(ctx.module).__module__)):
        candidate = getattr(holder, short, None)
        if isinstance(candidate, type):
            return candidate
    return None


def _python(f: Finding, loc: SourceLocation, ctx: FixContext) -> Written:
    if "graph_break" in loc.code:
        why = "An explicit graph break: strict export cannot split the graph; delete it."
        found = statement_at(loc.file, loc.line)
        last = found.statement.end_lineno or loc.line if found else loc.line
        return why, f"# replaces lines {loc.line}-{last} of {os.path.basename(loc.file)}:\npass  # was: {loc.code.split('#')[0].strip()}", False
    if f.mode == "strict" or set(f.message.split()) & {"dynamo", "Dynamo"}:
        why = ("Strict mode (TorchDynamo) cannot trace this Python; non-strict export runs it as ordinary Python.")
        return why, ("Export without strict mode: `torch.export.export(model, example_args, strict=False)`, or "
                     "`pt2kit export` without `--mode strict` (its default tries non-strict first)."), False
    why = ("This line leaves torch (reads raw data: `.numpy()`, `data_ptr()`, a C extension), which tracing cannot "
           "see; wrap it in a custom operator with a fake kernel, or write it with torch ops.")
    return why, custom_op_wrapper(loc, ctx.statements.get((loc.file, loc.line))) or _advice(
        loc, "wrap this line in a `@torch.library.custom_op` that takes and returns tensors, with a "
             "`register_fake` kernel giving its output's shape and dtype; or write it with torch operations"), False


def _specialized(f: Finding, loc: SourceLocation, ctx: FixContext) -> Written:
    sizes = re.findall(r"(\w+)\.shape\[(\d+)\]", f.expr)
    entries = tuple(DimEntry(name, int(dim), f"{name}_dim{dim}") for name, dim in dict.fromkeys(sizes))
    why = (f"`{f.expr}` was decided once, at export, on the example's sizes ({f.message}); the program keeps only "
           "that side. Declare the dim dynamic and keep both sides with torch.cond.")
    parts = [f"# add at module level of {_basename(ctx)} (pass it as `dynamic_shapes=`):",
             dynamic_shapes_code(DynamicSpec(entries)), f"# pt2kit: --dynamic {DynamicSpec(entries)}"]
    rewrite = _rewrite(loc, ctx) if is_branch_statement(statement_at(loc.file, loc.line), loc.line) else None
    if isinstance(rewrite, BranchRewrite):
        parts.append(str(rewrite))
    return why, "\n".join(parts), isinstance(rewrite, BranchRewrite)


def _eager(f: Finding, loc: SourceLocation, ctx: FixContext) -> Written:
    why = "The model fails in plain Python on its example inputs, before any export; fix this first."
    first = f.message.splitlines()[0][:200] if f.message else "an error"
    return why, (f"Make `model(*example_args)` run: at line {loc.line} it raises `{first}`. Fix the model or the "
                 "example inputs (`--input`), then diagnose again."), False


def _unclassified(f: Finding, loc: SourceLocation, ctx: FixContext) -> Written:
    why = "pt2kit does not recognise this failure; torch's message is kept below, unchanged."
    return why, ("Read torch's message below at this line; to see every problem torch finds past the first, run "
                 "`torch.export.draft_export(model, example_args)` and print its `_report`."), False


def _advice(loc: SourceLocation, advice: str) -> str:
    """Prose for a fix pt2kit cannot write as code that runs."""
    return f"At line {loc.line} (`{loc.code.split('#')[0].strip()}`): {advice}."


def _basename(ctx: FixContext) -> str:
    path = getattr(ctx.source, "__file__", None)
    return os.path.basename(path) if path else "the model's file"


_WRITERS: dict[BlockerKind, Callable[[Finding, SourceLocation, FixContext], Written]] = {
    BlockerKind.DATA_DEPENDENT_BRANCH: _branch,
    BlockerKind.DATA_DEPENDENT_VALUE: _value,
    BlockerKind.UNSUPPORTED_PYTHON: _python,
    BlockerKind.UNSUPPORTED_OPERATOR: _operator,
    BlockerKind.DYNAMIC_SHAPE_VIOLATION: _shape_violation,
    BlockerKind.ZERO_ONE_SPECIALIZATION: _zero_one,
    BlockerKind.INPUT_MUTATION_OR_ALIASING: _mutation,
    BlockerKind.NON_PYTREE_TYPE: _pytree,
    BlockerKind.SHAPE_SPECIALIZED: _specialized,
    BlockerKind.EAGER_FAILURE: _eager,
    BlockerKind.UNCLASSIFIED: _unclassified,
}

__all__ = ["FixContext", "apply_suggestions", "fake_kernel_stub", "find_type", "write_fix"]
