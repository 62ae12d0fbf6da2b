"""The sources that see past the first failure: `torch.export.draft_export` and `torch._dynamo.explain`.

Plain `torch.export.export` stops at the first error. `draft_export` keeps tracing: it runs
data-dependent code on the real example values, generates fake kernels from real ones, and turns
violated dynamic-shape constraints into `Dim.AUTO`, logging each problem in `ep._report`.
`explain` compiles with graph breaks allowed and lists every break, which is both a list of
strict-mode blockers and the answer to "how would torch.compile run this?".

Both are read defensively: the report's attributes (`failures`, `failure_type`, `data`,
`str_to_filename`) are the same in torch 2.11 and 2.13, but each is looked up with `getattr`.
"""

from __future__ import annotations

import ast
import contextlib
import io
import logging
import re
import sys
from typing import Any

import torch
import torch.utils._pytree as pytree

from pt2kit.capture.capture import SourceLocation, is_user_file, quiet_torch_logs, short_message
from pt2kit.diagnose.blockers import BlockerKind, CompileReport, GraphBreak
from pt2kit.diagnose.classify import Finding, chain_text, classify_exception, kind_for_code, operator_name
from pt2kit.diagnose.source_code import location_at, statement_at

_STACK_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\w+)')


@contextlib.contextmanager
def _silenced():
    with quiet_torch_logs(), contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        # draft_export reads its findings back from structured logs on this logger: keep it open
        trace = logging.getLogger("torch.__trace")
        level = trace.level
        trace.setLevel(logging.DEBUG)
        try:
            yield
        finally:
            trace.setLevel(level)


def draft_findings(module, args, kwargs, dynamic_shapes, strict: bool) -> list[Finding]:
    """Every problem `draft_export` logs, located in the user's code, plus any it raised.

    draft_export cannot trace past an input or output of a class that is not a pytree. When it
    stops there, that is reported, the class is registered as a pytree node for the length of one
    more try (flattened by attribute) and draft runs again, so blockers elsewhere are still found.
    """
    draft = getattr(torch.export, "draft_export", None)
    if draft is None:
        return []
    findings: list[Finding] = []
    registered: list[type] = []
    ep = None
    try:
        for _ in range(4):
            try:
                with _silenced():
                    ep = draft(module, args, kwargs, dynamic_shapes=dynamic_shapes, strict=strict)
                break
            except Exception as exc:  # draft_export stops on what it cannot work around: a finding too
                finding = classify_exception(exc, "draft")
                findings.append(finding)
                cls = _class_named(chain_text(exc)) if finding.kind is BlockerKind.NON_PYTREE_TYPE else None
                if cls is None or cls in registered or not _register_temporarily(cls):
                    return findings
                registered.append(cls)
            finally:
                torch._dynamo.reset()
    finally:
        for cls in registered:
            pytree._deregister_pytree_node(cls)
    if ep is None:
        return findings
    report = getattr(ep, "_report", None)
    failures = getattr(report, "failures", None) or []
    filenames = _interned_filenames(getattr(report, "str_to_filename", {}) or {})
    op_lines = _operator_lines(ep)
    for failure in failures:
        found = _draft_finding(failure, filenames, op_lines)
        if found is not None:
            findings.append(found)
    return findings


def _class_named(text: str) -> type | None:
    """The user class a pytree error names (`<class 'mod.Box'>`), from the loaded modules."""
    m = re.search(r"<class '([\w.]+)\.(\w+)'>", text)
    module = sys.modules.get(m.group(1)) if m else None
    cls = getattr(module, m.group(2), None) if module else None
    return cls if isinstance(cls, type) else None


def _register_temporarily(cls: type) -> bool:
    if not hasattr(pytree, "_deregister_pytree_node") or cls in pytree.SUPPORTED_NODES:
        return False

    def unflatten(values, names):
        obj = object.__new__(cls)
        obj.__dict__.update(zip(names, values))
        return obj

    pytree.register_pytree_node(cls, lambda obj: (list(vars(obj).values()), list(vars(obj))), unflatten)
    return True


def _draft_finding(failure: Any, filenames: dict, op_lines: dict) -> Finding | None:
    kind_name = str(getattr(failure, "failure_type", ""))
    data = getattr(failure, "data", {}) or {}
    location = _stack_location(data.get("user_stack") or [], filenames)
    if kind_name.endswith("DATA_DEPENDENT_ERROR"):
        if location is not None and _is_assert(location):
            return None  # export turns a Python `assert` on data into a runtime assert; draft logs it anyway
        kind = kind_for_code(BlockerKind.DATA_DEPENDENT_VALUE, location)
        expr = str(data.get("expr", ""))
        message = f"data-dependent expression `{expr}` (the example gives {data.get('result', '?')})"
        return Finding(kind, location, "draft", message, expr=expr, result=str(data.get("result", "")))
    if kind_name.endswith("MISSING_FAKE_KERNEL") or kind_name.endswith("MISMATCHED_FAKE_KERNEL"):
        op = operator_name(None, f"unsupported operator: {data.get('op', '')}")
        reason = data.get("reason", "")
        message = f"operator `{op}` " + (f"has a fake kernel that disagrees with the real one: {reason}"
                                         if reason else "has no fake kernel")
        return Finding(BlockerKind.UNSUPPORTED_OPERATOR, op_lines.get(op), "draft", message, op=op)
    if kind_name.endswith("GUARD_ADDED"):
        sources = data.get("symbol_to_sources", {}) or {}
        expr = str(data.get("expr", ""))
        for sym, src in sources.items():
            expr = re.sub(rf"\b{sym}\b", _readable_source(str(src)), expr)
        return Finding(BlockerKind.DYNAMIC_SHAPE_VIOLATION, location, "draft", f"the code requires `{expr}`",
                       expr=expr)
    return None


def _is_assert(location: SourceLocation) -> bool:
    ctx = statement_at(location.file, location.line)
    return ctx is not None and isinstance(ctx.statement, ast.Assert)


def _interned_filenames(reported: dict) -> dict:
    """Index -> filename for the user stacks in the report. torch logs each filename once per process,
    so files interned by an earlier export are missing from the report; its intern table has them."""
    table = getattr(getattr(torch._logging, "structured", None), "INTERN_TABLE", None) or {}
    return {**{index: name for name, index in table.items()}, **reported}


def _readable_source(src: str) -> str:
    """`L['x'].size()[0]` -> `x.shape[0]`."""
    return re.sub(r"L\['(\w+)'\]\.size\(\)\[(\d+)\]", r"\1.shape[\2]", src)


def _stack_location(stack: list, filenames: dict) -> SourceLocation | None:
    for frame in reversed(stack):
        name = frame.get("filename")
        path = filenames.get(name, name) if isinstance(name, int) else name
        if isinstance(path, str) and is_user_file(path):
            return location_at(path, int(frame.get("line", 0)), str(frame.get("name", "")))
    return None


def _operator_lines(ep) -> dict[str, SourceLocation]:
    """`ns::name` -> the user's line that called it, from the graph's stack traces."""
    found: dict[str, SourceLocation] = {}
    for node in ep.graph.nodes:
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
            continue
        op = _qualified_op(node.target)
        trace = node.meta.get("stack_trace") or ""
        frames = [m for m in _STACK_FRAME.finditer(trace) if is_user_file(m.group(1))]
        if frames and op not in found:
            m = frames[-1]
            found[op] = location_at(m.group(1), int(m.group(2)), m.group(3))
    return found


def _qualified_op(op) -> str:
    schema_name = op._schema.name  # "ns::name"
    return schema_name if "::" in schema_name else str(op)


def explain_compile(module, args, kwargs) -> tuple[CompileReport, list[Finding]]:
    """How `torch.compile` runs the model; each graph break is also a strict-mode finding."""
    try:
        with _silenced():
            out = torch._dynamo.explain(module)(*args, **kwargs)
    except Exception as exc:  # compile would stop here too
        finding = classify_exception(exc, "compile")
        return CompileReport(False, error=_located(short_message(exc), finding.location)), [finding]
    finally:
        torch._dynamo.reset()
    breaks, findings = [], []
    for reason in getattr(out, "break_reasons", []) or []:
        location = None
        for frame in reversed(list(getattr(reason, "user_stack", []) or [])):
            if is_user_file(frame.filename):
                location = location_at(frame.filename, frame.lineno or 0, frame.name)
                break
        text = _reason_line(str(getattr(reason, "reason", "")))
        breaks.append(GraphBreak(location, _readable_reason(text)))
        kind = _graph_break_kind(text, location)
        if kind is not None:
            findings.append(Finding(kind, location, "strict", text))
    report = CompileReport(True, int(getattr(out, "graph_count", len(breaks) + 1)), tuple(breaks))
    return report, findings


def _graph_break_kind(reason: str, location: SourceLocation | None) -> BlockerKind | None:
    """A graph break as an export blocker; None for breaks strict export does not hit (`.item()`
    breaks compile only because `capture_scalar_outputs` is off there, while export captures it)."""
    if re.search(r"Tensor\.item|item\(\)|tolist|capture_scalar_outputs", reason):
        return None
    if re.search(r"[Dd]ata-dependent|generic_jump|jump .*TensorVariable", reason):
        return kind_for_code(BlockerKind.DATA_DEPENDENT_BRANCH, location)
    if re.search(r"inplace view on a graph input", reason):
        return BlockerKind.INPUT_MUTATION_OR_ALIASING
    if re.search(r"fake tensor|fake impl|unsupported operator", reason, re.IGNORECASE):
        return BlockerKind.UNSUPPORTED_OPERATOR
    return BlockerKind.UNSUPPORTED_PYTHON


# dynamo's terse break reasons, said the way a user would (the raw reason follows in parentheses)
_REASONS = (
    (re.compile(r"generic_jump|jump .*TensorVariable"), "a Python branch on a tensor's value"),
    (re.compile(r"Tensor\.item|item\(\)"), "`.item()` turns a tensor into a Python number"),
    (re.compile(r"graph_break\(\)"), "an explicit torch._dynamo.graph_break()"),
)


def _readable_reason(text: str) -> str:
    for pattern, said in _REASONS:
        if pattern.search(text):
            return f"{said} ({text})"
    return text


def _reason_line(text: str) -> str:
    """A graph break's reason: its first line, with dynamo's `Explanation:` line when it has one."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    head = lines[0] if lines else text
    explanation = next((ln for ln in lines[1:] if ln.startswith("Explanation:")), "")
    return (head + (f" ({explanation.removeprefix('Explanation:').strip()})" if explanation else ""))[:300]


def _located(message: str, location: SourceLocation | None) -> str:
    return f"{location}: `{location.code}`: {message}" if location else message


__all__ = ["draft_findings", "explain_compile"]
