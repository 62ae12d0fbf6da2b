"""Map a torch failure to a `BlockerKind`, by exception class and message, and find the user's line.

The rules, in the order they are tried (first match wins; the text searched is the message of the
exception and of every exception in its `__cause__`/`__context__` chain):

| kind | exception classes / message patterns (torch 2.11 - 2.13) |
| --- | --- |
| DYNAMIC_SHAPE_VIOLATION | `ConstraintViolationError`, `UserError(CONSTRAINT_VIOLATION)`: "Constraints violated" |
| ZERO_ONE_SPECIALIZATION | the same, when a dim "specialized it to be a constant (0)" or "(1)" |
| UNSUPPORTED_OPERATOR | `UnsupportedOperatorException`; "no fake impl registered", "does not support running with fake tensors", "unsupported operator:", "has no meta", "fake kernel" |
| NON_PYTREE_TYPE | "Unsupported input type", "not supported or pytree-flattenable", "which is not a known type", "unrecognized type ... at output" |
| INPUT_MUTATION_OR_ALIASING | "inplace view on a graph input", "mutat... input", "aliases an input"; or the user's line calls an in-place metadata method (`x.unsqueeze_()`) |
| DATA_DEPENDENT_BRANCH | `GuardOnDataDependentSymNode` / "Could not guard on data-dependent expression" / "Data-dependent branching" when the user's line is an `if`/`while` test or a ternary |
| DATA_DEPENDENT_VALUE | the same on any other line, and "Could not extract specialized integer from data-dependent expression" |
| UNSUPPORTED_PYTHON | any other dynamo `Unsupported` (a strict-mode graph break); "Cannot access data pointer", ".numpy() is not supported" |
| UNCLASSIFIED | anything else; torch's message is kept |

A failure of the eager run is `EAGER_FAILURE` whatever its message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from pt2kit.capture.capture import SourceLocation, is_user_file, short_message, user_location
from pt2kit.diagnose.blockers import BlockerKind
from pt2kit.diagnose.source_code import METADATA_MUTATIONS, is_branch_statement, location_at, statement_at


@dataclass(frozen=True)
class Finding:
    """One raw observation from one source, before findings at the same line are merged.

    `expr`/`result`: a data-dependent expression (torch's sympy text) and its value on the example;
    `op`: an operator `ns::name`; `type_name`: a non-pytree type; `suggestions`: torch's suggested
    dynamic-shape fixes (`batch = Dim('batch', min=6)`), each a line of Python.
    """

    kind: BlockerKind
    location: SourceLocation | None
    mode: str
    message: str
    expr: str = ""
    result: str = ""
    op: str = ""
    type_name: str = ""
    suggestions: tuple[str, ...] = ()


_DATA_DEPENDENT = re.compile(r"Could not guard on data-dependent expression|Data-dependent branching|data-dependent")
_SPECIALIZED_INT = re.compile(r"Could not extract specialized integer from data-dependent expression")
_DDE_EXPR = re.compile(r"data-dependent expression (.+?) \(unhinted")
_OPERATOR = re.compile(
    r"no fake impl registered|does not support running with fake tensors|unsupported operator:|has no meta|"
    r"fake kernel|Meta tensors? (?:is|are) not|NotImplementedError.*Meta|could not run .* with arguments from the 'Meta'",
    re.IGNORECASE,
)
_OP_NAME = (
    re.compile(r"<CustomOpDef\(([\w.]+::[\w.]+)\)>"),
    re.compile(r"unsupported operator: ([\w.]+)"),
    re.compile(r"(?:operator|op) [`']?([\w]+::[\w.]+)"),
)
_PYTREE = re.compile(r"Unsupported input type|pytree-flattenable|which is not a known type|unrecognized type .* at output")
_TYPE_NAME = (re.compile(r"<class '([\w.]+)'>"), re.compile(r"UserDefinedObjectVariable\((\w+)\)"))
_MUTATION = re.compile(r"inplace view on a graph input|mutat\w* (?:of |on |an? )?(?:graph )?input|aliases? (?:an |the )?input",
                       re.IGNORECASE)
_UNTRACEABLE = re.compile(r"Cannot access data pointer|\.numpy\(\) is not supported|Cannot access storage|"
                          r"Cannot call numel\(\) on tensor with symbolic sizes", re.IGNORECASE)
_ZERO_ONE = re.compile(r"specialized it to be a constant \(([01])\)")


def chain_text(exc: BaseException) -> str:
    """The messages of `exc` and every exception it was raised from, joined."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def chain_types(exc: BaseException) -> set[str]:
    names, seen = set(), set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        names.update(t.__name__ for t in type(exc).__mro__)
        exc = exc.__cause__ or exc.__context__
    return names


def classify_exception(exc: BaseException, mode: str, fallback: SourceLocation | None = None) -> Finding:
    """One `Finding` for a failed capture (or eager run, `mode="eager"`), located in the user's code."""
    location = dynamo_user_frame(exc) or user_location(exc) or fallback
    message = short_message(exc)
    if mode == "eager":
        return Finding(BlockerKind.EAGER_FAILURE, location, mode, f"{type(exc).__name__}: {message}")
    kind = kind_of(exc, location)
    finding = Finding(kind, location, mode, message)
    text = chain_text(exc)
    if kind in (BlockerKind.DATA_DEPENDENT_BRANCH, BlockerKind.DATA_DEPENDENT_VALUE):
        m = _DDE_EXPR.search(text)
        finding = replace(finding, expr=m.group(1) if m else "")
    elif kind is BlockerKind.UNSUPPORTED_OPERATOR:
        finding = replace(finding, op=operator_name(exc, text))
    elif kind is BlockerKind.NON_PYTREE_TYPE:
        found = [m.group(1) for p in _TYPE_NAME for m in [p.search(text)] if m]
        finding = replace(finding, type_name=found[0] if found else "")
    elif kind in (BlockerKind.DYNAMIC_SHAPE_VIOLATION, BlockerKind.ZERO_ONE_SPECIALIZATION):
        finding = replace(finding, suggestions=suggested_fixes(text), message=message)
    return finding


_FROM_USER_CODE = re.compile(r'File "([^"]+)", line (\d+), in (\w+)')


def dynamo_user_frame(exc: BaseException) -> SourceLocation | None:
    """The innermost user frame of dynamo's "from user code:" section, which names the line being
    traced (the Python traceback of a graph break names the resume function instead)."""
    text = str(exc)
    if "from user code:" not in text:
        return None
    section = text.split("from user code:", 1)[1]
    frames = [m for m in _FROM_USER_CODE.finditer(section) if is_user_file(m.group(1))]
    if not frames:
        return None
    m = frames[-1]
    return location_at(m.group(1), int(m.group(2)), m.group(3))


def kind_of(exc: BaseException, location: SourceLocation | None) -> BlockerKind:
    """The rules in this module's docstring, applied to one exception chain."""
    text = chain_text(exc)
    types = chain_types(exc)
    code = location.code if location else ""
    if "ConstraintViolationError" in types or "Constraints violated" in text:
        return BlockerKind.ZERO_ONE_SPECIALIZATION if _ZERO_ONE.search(text) else BlockerKind.DYNAMIC_SHAPE_VIOLATION
    if "UnsupportedOperatorException" in types or _OPERATOR.search(text):
        return BlockerKind.UNSUPPORTED_OPERATOR
    if _PYTREE.search(text):
        return BlockerKind.NON_PYTREE_TYPE
    if _MUTATION.search(text) or any(f".{m}(" in code for m in METADATA_MUTATIONS):
        return BlockerKind.INPUT_MUTATION_OR_ALIASING
    if "GuardOnDataDependentSymNode" in types or _DATA_DEPENDENT.search(text):
        if _SPECIALIZED_INT.search(text):
            return BlockerKind.DATA_DEPENDENT_VALUE
        if location and is_branch_statement(statement_at(location.file, location.line), location.line):
            return BlockerKind.DATA_DEPENDENT_BRANCH
        return BlockerKind.DATA_DEPENDENT_BRANCH if "Data-dependent branching" in text else BlockerKind.DATA_DEPENDENT_VALUE
    if _UNTRACEABLE.search(text):
        return BlockerKind.UNSUPPORTED_PYTHON
    if "Unsupported" in types and "Observed exception" not in text:
        return BlockerKind.UNSUPPORTED_PYTHON
    return BlockerKind.UNCLASSIFIED


def operator_name(exc: BaseException | None, text: str) -> str:
    """`ns::name` of the operator a failure is about ('' when the message names none)."""
    if exc is not None and type(exc).__name__ == "UnsupportedOperatorException" and exc.args:
        return _qualified(str(exc.args[0]))
    for pattern in _OP_NAME:
        m = pattern.search(text)
        if m:
            return _qualified(m.group(1))
    return ""


def _qualified(name: str) -> str:
    """`ns.name.default` or `ns::name` -> `ns::name`."""
    name = name.strip().strip("`'")
    if "::" in name:
        return name.split(".")[0] if name.count(".") and name.index("::") < name.index(".") else name
    parts = name.split(".")
    return f"{parts[0]}::{parts[1]}" if len(parts) >= 2 else name


def suggested_fixes(text: str) -> tuple[str, ...]:
    """torch's 'Suggested fixes:' lines (each valid Python), in order."""
    lines = text.splitlines()
    out: list[str] = []
    for i, ln in enumerate(lines):
        if ln.strip().startswith("Suggested fixes"):
            for nxt in lines[i + 1:]:
                if not nxt.startswith("  ") or not re.match(r"\s+\w+ = ", nxt):
                    break
                out.append(nxt.strip())
    return tuple(dict.fromkeys(out))


def zero_one_dims(text: str) -> list[str]:
    """Names of dims torch specialized to 0 or 1 (`You marked batch as dynamic ... constant (1)`)."""
    return re.findall(r"You marked (\w+) as dynamic but your code specialized it to be a constant \([01]\)", text)


def kind_for_code(kind: BlockerKind, location: SourceLocation | None) -> BlockerKind:
    """A data-dependent finding from a source that does not say branch or value: decide by the line."""
    if kind not in (BlockerKind.DATA_DEPENDENT_BRANCH, BlockerKind.DATA_DEPENDENT_VALUE) or location is None:
        return kind
    branch = is_branch_statement(statement_at(location.file, location.line), location.line)
    return BlockerKind.DATA_DEPENDENT_BRANCH if branch else BlockerKind.DATA_DEPENDENT_VALUE


__all__ = ["Finding", "chain_text", "classify_exception", "kind_for_code", "kind_of", "operator_name",
           "suggested_fixes", "zero_one_dims"]
