"""`diagnose_model`: every blocker of one model, found in one run, each at the user's line with a fix.

Sources, each of which sees something the others miss:

1. eager run: a model that fails in plain Python is reported as such, and nothing else.
2. non-strict and strict `torch.export.export` (`capture.capture`): the first failure of each
   mode, with torch's exception chain (the ground truth for "does it export?").
3. `torch.export.draft_export`: keeps going past data-dependent expressions, missing fake kernels
   and violated dim constraints, so blockers after the first one are found too.
4. `torch._dynamo.explain`: every graph break (each a strict-mode blocker), which is also how
   `torch.compile` would run the model.
5. when export succeeds, the shape-specialization re-trace (`specialization.py`): branches on
   sizes that export decided once and baked in.

Findings at the same line are merged (a branch both modes stop at is one blocker, found by both).
A draft finding traced before the line plain export failed on is dropped: plain export got past
it, so it is draft's over-reporting, not a blocker.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import replace

from pt2kit import progress
from pt2kit.capture.capture import CaptureMode, SourceLocation, capture
from pt2kit.diagnose.blockers import Blocker, BlockerKind, Diagnosis
from pt2kit.diagnose.branch_fix import BranchRewriter
from pt2kit.diagnose.classify import Finding, chain_text, classify_exception, zero_one_dims
from pt2kit.diagnose.fixes import FixContext, find_type, write_fix
from pt2kit.diagnose.custom_op_fix import wrapped_statement
from pt2kit.diagnose.line_values import statement_values, values_at_lines
from pt2kit.diagnose.source_code import definition_location, forward_location, return_location
from pt2kit.diagnose.sources import draft_findings, explain_compile
from pt2kit.capture.specialization import find_specializations
from pt2kit.rewrite.fix import failure_site
from pt2kit.shapes.spec import DynamicSpec, parse_dynamic, to_dynamic_shapes
from pt2kit.target.resolve import Target

_DATA_DEPENDENT = (BlockerKind.DATA_DEPENDENT_BRANCH, BlockerKind.DATA_DEPENDENT_VALUE)


def diagnose_model(
    target: Target,
    dynamic: str | DynamicSpec | None = None,
    *,
    mode: str | CaptureMode = CaptureMode.AUTO,
    check_compile: bool = True,
) -> Diagnosis:
    """Find every blocker that stops (or silently distorts) `torch.export` of `target`, in one run.

    Args:
        target: from `load_target`.
        dynamic: a `--dynamic` spec (text or parsed); defaults to the target file's `dynamic`.
        mode: `auto` (the model exports if either mode does), `non-strict` or `strict`.
        check_compile: also ask `torch._dynamo.explain` how `torch.compile` treats the model.

    Returns:
        A `Diagnosis`: `exports`, the blockers in source order, and the compile report.

    Raises:
        InputSpecError: the dynamic spec does not fit the model's inputs.

    Example:
        >>> d = diagnose_model(load_target("model.py:model"), "x:0=batch[1,64]")
        >>> print(d)  # one block per blocker, each with the fix as code
    """
    spec = dynamic if isinstance(dynamic, DynamicSpec) else parse_dynamic(dynamic if dynamic is not None else target.dynamic)
    mode = CaptureMode(mode)
    params = target.parameter_names
    module, args, kwargs = target.module, target.args, target.kwargs
    dynamic_shapes = to_dynamic_shapes(spec, params, args, kwargs)
    # where a blocker with no line of its own is pinned: the model's `def forward`, or else the
    # line of the target file that defines NAME (a model built from torch's own modules)
    fallback = forward_location(module) or definition_location(target.source, target.spec.rpartition(":")[2])
    with progress.stage("diagnose: export"):
        result = capture(module, args, kwargs, mode=mode, dynamic_shapes=dynamic_shapes)
    findings: list[Finding] = []
    texts: list[str] = []
    eager_failed = not result.ok and result.attempts and result.attempts[0].mode == "eager"
    for attempt in result.attempts if not result.ok else ():
        findings.append(classify_exception(attempt.exception, attempt.mode))
        texts.append(chain_text(attempt.exception))
    if result.ok:
        with progress.stage("diagnose: shape specialization"):
            findings += _specialization_findings(target, spec)
    elif not eager_failed:
        with progress.stage("diagnose: draft export"):
            drafted = draft_findings(module, args, kwargs, dynamic_shapes, strict=mode is CaptureMode.STRICT)
        findings += _past_first_failure(drafted, findings)
    compile_report = None
    if check_compile and not eager_failed:
        with progress.stage("diagnose: torch.compile graph breaks"):
            compile_report, breaks = explain_compile(module, args, kwargs)
        strict_failed = any(a.mode == "strict" and not a.ok for a in result.attempts)
        if not result.ok and (strict_failed or mode is not CaptureMode.NON_STRICT):
            findings += [b for b in breaks if b.location is not None]
    # the Python numbers at a value's line (its torch._check) and at a branch's (a `while` carries them as tensors)
    value_lines = {(f.location.file, f.location.line) for f in findings if f.location is not None
                   and f.kind in (BlockerKind.DATA_DEPENDENT_VALUE, BlockerKind.DATA_DEPENDENT_BRANCH)}
    wrapped = {(f.location.file, f.location.line): w for f in findings
               if f.location is not None and f.kind is BlockerKind.UNSUPPORTED_PYTHON and (w := wrapped_statement(f.location))}
    context = FixContext(
        module, args, kwargs, params, spec, target.source,
        suggestions=tuple(dict.fromkeys(s for f in findings for s in f.suggestions)),
        zero_one_dims=tuple(d for t in texts for d in zero_one_dims(t)),
        line_values=values_at_lines(module, args, kwargs, value_lines),
        statements=statement_values(module, args, kwargs, wrapped),
        branches=BranchRewriter(module, args, kwargs, param_names=params, spec=spec, dynamic_shapes=dynamic_shapes,
                                mode=mode, frame_locals=_failure_frames(result)),
    )
    blockers, notes = _blockers(findings, context, fallback)
    return Diagnosis(target.spec, tuple(blockers), result.ok, result, compile_report, tuple(notes))


def _failure_frames(result) -> dict[tuple[str, int], dict]:
    """(file, line) -> the locals of the user's frame each failed capture stopped in (as `--fix` reads them)."""
    frames = {}
    for attempt in result.attempts if not result.ok else ():
        location, frame_locals = failure_site(attempt.exception) if attempt.exception else (None, None)
        if location is not None and frame_locals is not None:
            frames.setdefault((location.file, location.line), frame_locals)
    return frames


def _specialization_findings(target: Target, spec: DynamicSpec) -> list[Finding]:
    declared = {f"{e.input}.shape[{e.dim}]" for e in spec.entries}
    found = find_specializations(target.module, target.args, target.kwargs, target.parameter_names)
    return [
        Finding(BlockerKind.SHAPE_SPECIALIZED, s.location, "specialization",
                "decided with " + ", ".join(f"{k}={v}" for k, v in s.sizes.items()), expr=s.condition)
        for s in found if not set(s.sizes) & declared
    ]


def _past_first_failure(drafted: list[Finding], failures: list[Finding]) -> list[Finding]:
    """Drop data-dependent draft findings traced before the line non-strict export stopped at."""
    first = next((f for f in failures if f.mode == "non-strict" and f.kind in _DATA_DEPENDENT and f.location), None)
    if first is None:
        return drafted
    index = next((i for i, d in enumerate(drafted) if d.location and d.location.line == first.location.line
                  and d.location.file == first.location.file), None)
    if index is None:
        return drafted
    return [d for i, d in enumerate(drafted) if i >= index or d.kind not in _DATA_DEPENDENT]


def _blockers(
    findings: list[Finding], context: FixContext, fallback: SourceLocation | None
) -> tuple[list[Blocker], list[str]]:
    """Merge findings into blockers, one per (line, kind); unlocated failures that other findings
    already explain become notes (kept, with torch's message, but not pinned to a wrong line)."""
    notes: list[str] = []
    confirmed = {(f.location.file, f.location.line) for f in findings if f.location and f.mode != "draft"}
    for f in findings:
        # draft_export runs real values through code past the first failure; an error only it raises
        # there is a lead, not a confirmed blocker
        if f.mode == "draft" and f.kind is BlockerKind.UNCLASSIFIED:
            if f.location is None or (f.location.file, f.location.line) not in confirmed:
                where = f" at {f.location}: `{f.location.code}`" if f.location else ""
                notes.append(f"draft_export, tracing past the first blocker, stopped{where}: {f.message}")
    findings = [f for f in findings if not (f.mode == "draft" and f.kind is BlockerKind.UNCLASSIFIED
                                            and (f.location is None or (f.location.file, f.location.line) not in confirmed))]
    located = [f for f in findings if f.location is not None]
    for f in list(findings):
        if f.location is not None:
            continue
        cover = _covering(f, located)
        if cover is not None:  # torch's unlocated message joins the located finding it explains
            located.append(replace(f, location=cover.location))
            continue
        if f.kind is BlockerKind.UNCLASSIFIED and located:
            notes.append(f"{f.mode} capture also failed, at no line of yours: {f.message}")
            continue
        where = _default_location(f, context) or fallback
        if where is not None:
            located.append(replace(f, location=where))
        else:
            notes.append(f"{f.mode}: {f.kind.title}: {f.message}")
    groups: dict[tuple[str, int], list[Finding]] = defaultdict(list)
    for f in located:
        groups[(f.location.file, f.location.line)].append(f)
    blockers = []
    for (_, _), group in sorted(groups.items(), key=lambda kv: (kv[0][0] != (fallback.file if fallback else ""), kv[0])):
        kinds = list(dict.fromkeys(f.kind for f in group if f.kind is not BlockerKind.UNCLASSIFIED))
        for kind in kinds or [BlockerKind.UNCLASSIFIED]:
            same = [f for f in group if f.kind is kind or (f.kind is BlockerKind.UNCLASSIFIED and kind == kinds[0])]
            blockers.append(_blocker(kind, same, context))
    return blockers, list(dict.fromkeys(notes))


def _covering(finding: Finding, located: list[Finding]) -> Finding | None:
    """The located finding that reports the same problem as one without a line (same kind, same operator)."""
    return next((f for f in located if f.kind is finding.kind and (not finding.op or f.op == finding.op)), None)


def _default_location(finding: Finding, context: FixContext) -> SourceLocation | None:
    if finding.kind is BlockerKind.NON_PYTREE_TYPE:
        in_inputs = find_type(finding.type_name, context, inputs_only=True) is not None
        return forward_location(context.module) if in_inputs else return_location(context.module)
    return None  # the caller falls back to `def forward` or the definition of NAME


def _blocker(kind: BlockerKind, group: list[Finding], context: FixContext) -> Blocker:
    merged = group[0]
    for f in group[1:]:
        merged = replace(
            merged, expr=merged.expr or f.expr, result=merged.result or f.result, op=merged.op or f.op,
            type_name=merged.type_name or f.type_name,
        )
    merged = replace(merged, kind=kind)
    # torch's own exception text wins over draft's summary, so nothing is reworded away
    message = next((f.message for f in group if f.mode not in ("draft", "specialization") and f.message), merged.message)
    message = re.sub(r"\s*\^{3,}", "", re.sub(r"User stack:.*?(?=Suggested fixes|$)", "", message)).strip()
    location = merged.location
    explanation, fix, auto = write_fix(merged, location, context)
    modes = tuple(dict.fromkeys(f.mode for f in group))
    return Blocker(kind, location, explanation, fix, auto, modes, message)


__all__ = ["diagnose_model"]
