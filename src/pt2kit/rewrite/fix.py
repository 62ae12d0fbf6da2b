"""`pt2kit export --fix`: capture, find the user's line that failed, rewrite that branch into
`torch.cond` on a copy of the model, capture again; until capture succeeds or no rule applies.
Then prove the rewrite equivalent to the original before anything is written.

    >>> result = fix_model(target.module, target.args, target.kwargs, param_names=target.parameter_names)
    >>> print(result.diff)            # the change, as a patch against the user's file
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from pt2kit import progress
from pt2kit.artifact.package import atomic_path
from pt2kit.capture.capture import Attempt, Capture, CaptureMode, SourceLocation, capture, is_user_file, user_location
from pt2kit.capture.specialization import find_specializations
from pt2kit.errors import FixFailed
from pt2kit.rewrite import ModelPatch, Refusal, RefusalReason, RewriteStep, rewrite_function, unified_diff
from pt2kit.rewrite.cond_outputs import OutputProblem, output_problem, rewrite_cond_outputs
from pt2kit.rewrite.equivalence import AUTO_LABEL, EquivalenceCheck, compare, probe_inputs
from pt2kit.shapes.spec import DynamicSpec

MAX_STEPS = 32
_MISMATCH = re.compile(r"(When merging two branches' output in torch\.cond,?\s*|same pytree structure|"
                       r"must have (the )?same|same metadata|number of outputs)([^\"\n]*)", re.I)


@dataclass(frozen=True)
class FixResult:
    """What `--fix` did.

    Attributes:
        steps: each branch rewritten, in order.
        left: what stopped the fix (empty when the model now exports).
        diff: the rewritten methods as a unified diff against the user's files.
        equivalence: the comparison with the original (None when nothing was rewritten or a branch was refused).
        capture: the last capture of the rewritten copy.
        module: the rewritten copy of the model.
    """

    steps: tuple[RewriteStep, ...]
    left: tuple[Refusal, ...]
    diff: str
    equivalence: EquivalenceCheck | None
    capture: Capture
    module: torch.nn.Module = field(compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.capture.ok and not self.left and (self.equivalence is None or self.equivalence.ok)

    def __str__(self) -> str:
        n = sum(1 for s in self.steps if s.rule not in {p.value for p in OutputProblem})
        lines = [f"fix: rewrote {n} branch{'es' if n != 1 else ''} into torch.cond"]
        lines += [f"  {s}" for s in self.steps]
        lines += [f"  {r.report()}" for r in self.left]
        if self.equivalence is not None:
            lines.append(f"  {self.equivalence}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"ok": self.ok, "steps": [s.to_json() for s in self.steps], "left": [r.to_json() for r in self.left],
                "diff": self.diff, "equivalence": self.equivalence.to_json() if self.equivalence else None}


def fix_model(
    module: torch.nn.Module, args: tuple, kwargs: dict | None = None, *, param_names: list[str],
    dynamic_shapes: Any = None, spec: DynamicSpec | None = None, mode: str | CaptureMode = CaptureMode.AUTO,
    max_steps: int = MAX_STEPS, seed: int = 0,
) -> FixResult:
    """Rewrite data-dependent branches of a copy of `module` into `torch.cond` until it exports.

    Args:
        module: the user's model (never modified).
        args, kwargs: example inputs.
        param_names: `forward`'s parameter names (for dynamic shapes and random inputs).
        dynamic_shapes: as for `torch.export.export`; `spec` is its parsed form, used to probe sizes.
        mode: capture mode; `auto` rewrites against non-strict capture, whose failures keep the frame.
        max_steps: give up after this many rewrites.
        seed: seed of the random inputs of the equivalence check.

    Returns:
        A `FixResult`; `result.ok` says whether the copy exports and matches the original.
    """
    kwargs = kwargs or {}
    loop_mode = CaptureMode.NON_STRICT if CaptureMode(mode) is CaptureMode.AUTO else CaptureMode(mode)
    patch = ModelPatch(module)
    steps: list[RewriteStep] = []
    left: list[Refusal] = []
    seen: set[tuple] = set()
    result = None
    auto_dims = _auto_dims(spec)
    for _ in range(max_steps + 1):
        result = capture(patch.model, args, kwargs, mode=loop_mode, dynamic_shapes=dynamic_shapes)
        if len(steps) >= max_steps:
            if not result.ok:
                left.append(Refusal(RefusalReason.NO_RULE, steps[-1].location if steps else None, f"gave up after {max_steps} rewrites"))
            break
        if result.ok:
            # a dim declared `auto` that a shape branch narrowed: keep both sides too
            narrowed = _specialized_branch(patch, args, kwargs, param_names, seen, auto_dims) if auto_dims else None
            if narrowed is None or _rewrite_at(patch, narrowed, None, "", steps, seen) is not None:
                break
            continue
        failed = result.attempts[-1]
        refusal = _next_rewrite(patch, failed, steps, seen, (args, kwargs, param_names))
        if refusal is not None:
            left.append(refusal)
            break
    equivalence = None
    if steps and not left:
        with progress.stage("check the rewrite against the original"):
            inputs = probe_inputs(args, kwargs, param_names, spec, seed)
            equivalence = compare(module, {"rewritten model": patch.model}, inputs)
            if result.ok:  # a size a dim declared `auto` may not take is no fault of the program
                in_range = [i for i in inputs if not i[0].startswith(AUTO_LABEL)]
                equivalence = equivalence.merge(compare(module, {"exported program": result.program.module()}, in_range))
        if not equivalence.ok:
            left.append(Refusal(RefusalReason.NOT_EQUIVALENT, None, str(equivalence)))
    diff = unified_diff(list(patch.methods.values()), patch.needs_torch_import)
    return FixResult(tuple(steps), tuple(left), diff, equivalence, result, patch.model)


def fix_target(target, *, dynamic_shapes: Any = None, spec: DynamicSpec | None = None,
               mode: str | CaptureMode = CaptureMode.AUTO) -> FixResult:
    """`fix_model` on a `Target`, for `export_program(fix=True)`.

    Raises:
        FixFailed: a branch was refused, or the rewritten model does not match the original. A failure
            with no line of user code behind it (a dynamic-shape constraint) is left to the export that follows.
    """
    with progress.stage("fix: rewrite data-dependent branches"):
        result = fix_model(target.module, target.args, target.kwargs, param_names=target.parameter_names,
                           dynamic_shapes=dynamic_shapes, spec=spec, mode=mode)
    blocking = [r for r in result.left if r.location is not None or r.reason is RefusalReason.NOT_EQUIVALENT]
    if blocking:
        lines = [f"--fix could not make `{target.spec}` exportable; nothing was written:"]
        lines += [f"  {s}" for s in result.steps]
        lines += ["  " + r.report() for r in blocking]
        raise FixFailed("\n".join(lines), result.capture, result)
    return result


def _next_rewrite(patch: ModelPatch, failed: Attempt, steps: list[RewriteStep], seen: set, inputs) -> Refusal | None:
    """Rewrite the branch behind `failed`; a Refusal when there is none to rewrite."""
    location, frame_locals = failure_site(failed.exception) if failed.exception else (failed.location, None)
    if location is None and "Constraints violated" in failed.message:
        # a branch on a dynamic dim narrowed its range; the guard's origin names the branch
        location = _specialized_branch(patch, *inputs, seen)
    if location is None and steps and "Constraints violated" in failed.message:
        # torch.cond merges sides of different sizes by constraining the dim: the rewrite cannot keep the range
        guard = re.search(r"generated guard ([^.]*)", failed.message)
        return Refusal(RefusalReason.BRANCH_MISMATCH, steps[-1].location,
                       f"after the rewrite export still needs `{guard.group(1) if guard else 'a guard'}` on a dynamic dim: "
                       "the two sides most likely return tensors of different sizes")
    if location is None:
        return Refusal(RefusalReason.NO_RULE, None, f"{failed.error_type} with no line of user code: {failed.message}")
    found = patch.locate(location)
    user_loc = _user_facing(patch, location)
    problem = output_problem(_messages(failed))
    if problem is not None and found is not None:  # a branch returns an input, a view of one, or another layout
        return _rewrite_outputs(patch, location, problem, steps, seen)
    mismatch = _MISMATCH.search(str(failed.exception or failed.message))
    if mismatch and found and "torch.cond(" in location.code:
        step = next((s for s in steps if s.condition in location.code), None)
        return Refusal(RefusalReason.BRANCH_MISMATCH, step.location if step else user_loc,
                       f"the two sides return different tensors ({mismatch.group(3).strip(' .') or mismatch.group(1).strip()})")
    return _rewrite_at(patch, location, frame_locals, f"{failed.error_type}: {failed.message[:200]}", steps, seen)


def _messages(failed: Attempt) -> str:
    """The failure's message and its causes': torch names the aliasing in the cause of the error it raises."""
    texts, seen, exc = [failed.message], set(), failed.exception
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        texts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(texts)


def _rewrite_outputs(patch: ModelPatch, location: SourceLocation, problem: OutputProblem, steps: list[RewriteStep], seen: set) -> Refusal | None:
    """Clone (or make contiguous) what the branches of the `torch.cond` at `location` return."""
    method, line = patch.locate(location)
    step = next((s for s in steps if s.condition in location.code), None)
    user_loc = step.location if step else _user_facing(patch, location)
    key = (method.synthetic_file, method.current, line, problem)
    outcome = None if key in seen else rewrite_cond_outputs(method.current, line, problem)
    seen.add(key)
    if outcome is None:
        if problem is OutputProblem.ALIAS:
            what, hint = "an input or a view of one", "return `x.clone()` instead of an input `x` or a view of it"
        else:
            what, hint = "a tensor laid out unlike the other side", "return `.contiguous()` tensors from both sides"
        return Refusal(RefusalReason.BRANCH_MISMATCH, user_loc,
                       f"a torch.cond branch returns {what}, and pt2kit cannot change it further in `{method.qualname}`; {hint}")
    text, condition = outcome
    patch.update(method, text)
    steps.append(RewriteStep(problem.value, method.qualname, step.condition if step else condition, user_loc))
    progress.info(f"{problem.value}: rewrote the returns of the torch.cond branches in {method.qualname}")
    return None


def _rewrite_at(patch: ModelPatch, location: SourceLocation, frame_locals: dict | None, why: str,
                steps: list[RewriteStep], seen: set) -> Refusal | None:
    """Rewrite the branch at `location` on the copy; a Refusal when it cannot be rewritten."""
    found = patch.locate(location)
    user_loc = _user_facing(patch, location)
    suffix = f" ({why})" if why else ""
    if found is None:
        return Refusal(RefusalReason.OUTSIDE_MODEL, user_loc, f"`{location.function}` is outside the model's classes and their modules{suffix}")
    method, line = found
    key = (method.synthetic_file, method.current, line)
    if key in seen:
        return Refusal(RefusalReason.NO_RULE, user_loc, f"rewriting did not help{suffix}")
    seen.add(key)
    outcome = rewrite_function(method.current, line, location=user_loc, frame_locals=frame_locals,
                               module_attrs=patch.module_attrs(method.cls))
    if isinstance(outcome, Refusal):
        if outcome.reason is RefusalReason.NO_RULE:
            return Refusal(outcome.reason, outcome.location, f"{outcome.detail}{suffix}")
        return outcome
    text, replacement = outcome
    patch.update(method, text)
    steps.append(RewriteStep(replacement.rule, method.qualname, replacement.condition, user_loc))
    progress.info(f"rewrote `if {replacement.condition}:` in {method.qualname} ({replacement.rule})")
    return None


def _auto_dims(spec: DynamicSpec | None) -> set[str] | None:
    """`x.shape[0]`-style names of the dims declared `auto` (None: none; `{"*"}`: every dim)."""
    if spec is None:
        return None
    if spec.all_auto:
        return {"*"}
    return {f"{e.input}.shape[{e.dim}]" for e in spec.entries if e.is_auto} or None


def _specialized_branch(patch: ModelPatch, args, kwargs, param_names, seen, dims: set[str] | None = None) -> SourceLocation | None:
    """The first branch of the model's code that decided a size once (on `dims` only, when given)."""
    for found in find_specializations(patch.model, args, kwargs, param_names):
        if dims and "*" not in dims and not set(found.sizes) & dims:
            continue
        site = patch.locate(found.location)
        if site is not None and (site[0].synthetic_file, site[0].current, site[1]) not in seen:
            return found.location
    return None


def failure_site(exc: BaseException) -> tuple[SourceLocation | None, dict | None]:
    """The innermost user line behind a capture failure, and that frame's locals when it was a real frame.

    Errors raised while torch traces a `torch.cond` branch carry the traced stack (`real_stack`), whose
    innermost user frame is deeper than the Python traceback's."""
    location = None
    chain, seen = [], set()
    e = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:
        stack = [f for f in (getattr(e, "real_stack", None) or []) if is_user_file(f.filename)]
        if stack:
            f = stack[-1]
            location = SourceLocation(f.filename, f.lineno or 0, f.name, (f.line or "").strip())
            break
    location = location or user_location(exc)
    if location is None:
        return None, None
    frame_locals = None
    for e in chain:
        tb = e.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if code.co_filename == location.file and tb.tb_lineno == location.line:
                frame_locals = dict(tb.tb_frame.f_locals)
            tb = tb.tb_next
    return location, frame_locals


def _user_facing(patch: ModelPatch, location: SourceLocation) -> SourceLocation:
    """A location in generated code, mapped back to the user's line with the same text when there is one."""
    for method in patch.methods.values():
        if location.file == method.synthetic_file:
            for i, text in enumerate(method.original.splitlines()):
                if location.code and text.strip() in (location.code, "el" + location.code):
                    return SourceLocation(method.file, method.first_line + i, method.name, location.code)
            return SourceLocation(method.file, method.first_line, method.name, location.code)
    return location




def write_patch(result: FixResult, path) -> None:
    """Write `result.diff` to `path` atomically; apply it with `patch -p0 < path` from the directory
    `--fix` ran in (or `git apply -p0 path`). An unchanged model writes an empty patch."""
    with atomic_path(path) as tmp:
        tmp.write_text(result.diff)


__all__ = ["FixResult", "failure_site", "fix_model", "fix_target", "write_patch"]
