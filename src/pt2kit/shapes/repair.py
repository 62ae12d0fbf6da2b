"""Repair a dynamic-shape spec from torch's own suggested fixes, and re-export.

When `torch.export` finds that the declared dims do not fit the model it raises a constraint
violation whose message ends with a "Suggested fixes:" block of Python (pt2kit.shapes.suggested_fixes
parses it: ranges, constants, equalities, derived dims, new roots).

`capture_with_repair` reads that block, applies each fix to the `DynamicSpec`, re-exports,
and repeats (bounded). Policy, so a repair never changes what the program computes:

- A fix forced by the model's structure (a dim that must equal a weight size, two inputs that
  are added together, a reshape that needs an even size) is applied, and said.
- A fix forced by a Python branch on a size in the user's code (`if x.shape[0] > 5:`) is never
  applied: narrowing the range would bake one side of the branch into the program. Export
  fails and the report gives both ways out: `--fix` (rewrite the branch into `torch.cond`,
  keeping the declared range) or the narrower spec, paste-able.
- A dim pinned because the example's size is 0 or 1 (torch specializes those) is re-traced
  with the example resized along that dim (to 2, or the range's min), keeping the declared range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from pt2kit.capture.capture import Capture, CaptureMode, SourceLocation, capture, quiet_torch_logs
from pt2kit.capture.shape_branches import size_guards
from pt2kit.shapes.report import FixKind, RepairReport, ShapeRepair, range_text
from pt2kit.shapes.spec import DimEntry, DynamicSpec, to_dynamic_shapes
from pt2kit.shapes.suggested_fixes import SuggestedFix, parse_suggested_fixes
from pt2kit.shapes.unprovable import check_guard, unprovable_guards

MAX_ROUNDS = 6


@dataclass(frozen=True)
class RepairedCapture:
    """`capture_with_repair`'s result: the last capture, and the spec and inputs it used."""

    capture: Capture
    spec: DynamicSpec
    args: tuple
    kwargs: dict
    report: RepairReport | None


def capture_with_repair(
    module: torch.nn.Module,
    args: tuple,
    kwargs: dict,
    spec: DynamicSpec,
    param_names: list[str],
    *,
    mode: str | CaptureMode = CaptureMode.AUTO,
    repair: bool = True,
    fix_applied: bool = False,
    max_rounds: int = MAX_ROUNDS,
) -> RepairedCapture:
    """Capture with `spec`; on a constraint violation apply torch's suggested fixes and retry.

    Args:
        module, args, kwargs: the model and its example inputs.
        spec: the declared dynamic shapes.
        param_names: forward's parameter names (bind positional inputs to spec names).
        mode: capture mode, as for `capture`.
        repair: False captures once, as declared.
        fix_applied: the branch rewrite already ran (changes only the advice given).
        max_rounds: most exports to try.

    Returns:
        A `RepairedCapture`; `.report` is None when nothing needed repair.

    Raises:
        InputSpecError: the spec does not fit the model's inputs.
    """
    module_mode = CaptureMode(mode)
    repairs: list[ShapeRepair] = []
    state = _State(module, dict(zip(param_names, args)) | dict(kwargs), param_names, len(args), spec,
                   extra_args=tuple(args[len(param_names):]))
    result, defer = None, False
    for rounds in range(1, max_rounds + 1):
        dynamic_shapes = to_dynamic_shapes(state.spec, param_names, state.args, state.kwargs)
        result = capture(module, state.args, state.kwargs, mode=module_mode, dynamic_shapes=dynamic_shapes, defer_guards=defer)
        if result.ok or not repair or not state.spec or state.spec.all_auto:
            break
        violation = next((a for a in result.attempts if a.exception is not None and "Suggested fixes:" in str(a.exception)), None)
        if violation is None:
            step = [] if defer else _unprovable_guards(result, state)
            repairs += step
            if not step or not all(r.applied for r in step):
                break  # no guard to check, or one is false somewhere in the range: the failure stands
            defer = True
            continue
        module_mode = CaptureMode(violation.mode)  # later rounds retry only the mode that got that far
        before = (state.spec, state.resized_shapes())
        step = state.apply(parse_suggested_fixes(str(violation.exception)), fix_applied)
        repairs += step
        if any(not r.applied for r in step) or (state.spec, state.resized_shapes()) == before:
            break  # a declined fix, or nothing changed: another export would fail the same way
    report = None
    if repairs:
        report = RepairReport(spec, state.spec, tuple(repairs), rounds, state.resized_shapes(), fix_applied)
    return RepairedCapture(result, state.spec, state.args, state.kwargs, report)


class _State:
    """The spec and example inputs being repaired, and the branch guards found (computed once)."""

    def __init__(self, module, bound: dict[str, Any], param_names: list[str], n_args: int, spec: DynamicSpec,
                 extra_args: tuple = ()):
        self.module, self.bound, self.param_names, self.n_args, self.spec = module, bound, param_names, n_args, spec
        self.extra_args = extra_args  # what `forward(*args)` collects: no name to key it by
        self.original = dict(bound)
        self.resized_once: set[str] = set()  # dims re-traced at another size because torch pinned them to the example's
        self._guards: dict[tuple[str, int], tuple[SourceLocation, bool]] | None = None

    @property
    def args(self) -> tuple:
        return tuple(self.bound[n] for n in self.param_names[: self.n_args]) + self.extra_args

    @property
    def kwargs(self) -> dict:
        return {k: v for k, v in self.bound.items() if k not in self.param_names[: self.n_args]}

    def resized_shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in self.bound.items() if v is not self.original[k] and isinstance(v, torch.Tensor)}

    def entries(self, name: str) -> list[DimEntry]:
        return [e for e in self.spec.entries if e.name == name and not e.is_auto]

    def where(self, name: str) -> str:
        return ", ".join(f"{e.input}:{e.dim}" + (f"={e.expression}" if e.is_derived else "") for e in self.entries(name)) or name

    def guard(self, name: str) -> tuple[SourceLocation, bool] | None:
        """Where user code decided on dim `name`'s size, and whether that was a Python branch."""
        if self._guards is None:
            self._guards = size_guards(self.module, self.args, self.kwargs, self.param_names)
        found = [self._guards[(e.input, e.dim)] for e in self.entries(name) if (e.input, e.dim) in self._guards]
        return next((g for g in found if g[1]), found[0] if found else None)

    def root_example(self, name: str) -> int | None:
        for e in self.entries(name):
            size = int(self.bound[e.input].shape[e.dim])
            if (size - e.offset) % e.scale == 0:
                return (size - e.offset) // e.scale
        return None

    def apply(self, fixes: list[SuggestedFix], fix_applied: bool) -> list[ShapeRepair]:
        roots = self.spec.roots()
        new_roots = {f.name: (f.min, f.max) for f in fixes if f.is_range and f.name not in roots}
        done: list[ShapeRepair] = []
        for fix in fixes:
            if fix.name not in roots:
                continue  # a new root: used by the relation that follows it
            if fix.is_range:
                done.append(self._narrow(fix, roots[fix.name], fix_applied))
            elif fix.value is not None:
                done.append(self._specialize(fix, fix_applied))
            elif fix.root in roots or fix.root in new_roots:
                done.append(self._relate(fix, roots, new_roots, fix_applied))
        return done

    def _declined(self, kind, fix, before, after, guard, fix_applied) -> ShapeRepair | None:
        if guard is None or not guard[1]:
            return None
        loc = guard[0]
        why = f"`{loc.code}` at {loc} is a Python branch on this size"
        why += "; the branch is still there after --fix" if fix_applied else "; `--fix` rewrites it into torch.cond and keeps the declared range"
        return ShapeRepair(kind, fix.name, self.where(fix.name), before, after, why, False, fix.text, loc)

    def _narrow(self, fix: SuggestedFix, declared: tuple[int | None, int | None], fix_applied: bool) -> ShapeRepair:
        low = fix.min if fix.min is not None else declared[0]
        high = fix.max if fix.max is not None else declared[1]
        before, after = range_text(*declared), range_text(low, high)
        declined = self._declined(FixKind.NARROW, fix, before, after, self.guard(fix.name), fix_applied)
        if declined:
            return declined
        guard = self.guard(fix.name)
        self.spec = self.spec.with_range(fix.name, low, high)
        reason = "the model only works for sizes in that range" + _at(guard)
        return ShapeRepair(FixKind.NARROW, fix.name, self.where(fix.name), before, after, reason, True, fix.text, guard and guard[0])

    def _specialize(self, fix: SuggestedFix, fix_applied: bool) -> ShapeRepair:
        where, declared = self.where(fix.name), self.spec.roots()[fix.name]
        example = self.root_example(fix.name)
        if example == fix.value and fix.value in (0, 1):
            resized = self._resize(fix.name, declared)
            if resized is not None:
                return ShapeRepair(
                    FixKind.RESIZE_EXAMPLE, fix.name, where, f"example size {fix.value}", f"example size {resized}",
                    f"torch pins a dim whose example size is 0 or 1; re-traced with {resized}, declared range {range_text(*declared)} kept",
                    True, fix.text,
                )
        guard = self.guard(fix.name)
        if example == fix.value and fix.name not in self.resized_once and not (guard and guard[1]):
            # torch pins a dim to the example's size when a size derived from it is 0 or 1 there
            # (`x.view(b, -1, 8)` with 8 columns: -1 is 1); another example size tells that apart
            # from a size the model really fixes. Tried once per dim; eager must accept the size.
            resized = self._resize(fix.name, declared, _other_size(example, declared))
            if resized is not None:
                self.resized_once.add(fix.name)
                return ShapeRepair(
                    FixKind.RESIZE_EXAMPLE, fix.name, where, f"example size {example}", f"example size {resized}",
                    f"torch fixed this dim to the example's size {example}, which can be an artifact of that size (a size "
                    f"derived from it is 0 or 1); re-traced with {resized}, declared range {range_text(*declared)} kept",
                    True, fix.text,
                )
        if fix.name in self.resized_once:
            self._restore(fix.name)  # a real constant: trace with the user's own example again
        declined = self._declined(FixKind.SPECIALIZE, fix, range_text(*declared), f"static {fix.value}", guard, fix_applied)
        if declined:
            return declined
        self.spec = self.spec.without(fix.name)
        reason = f"the model's code fixes this size to {fix.value} (e.g. a weight of that size){_at(guard)}; it is static now"
        return ShapeRepair(FixKind.SPECIALIZE, fix.name, where, range_text(*declared), f"static {fix.value}", reason, True, fix.text, guard and guard[0])

    def _relate(self, fix: SuggestedFix, roots, new_roots, fix_applied: bool) -> ShapeRepair:
        where, declared = self.where(fix.name), roots[fix.name]
        expr = DimEntry("", 0, fix.root, scale=fix.scale, offset=fix.offset).expression
        guard = self.guard(fix.name)
        declined = self._declined(FixKind.RELATE, fix, fix.name, expr, guard, fix_applied)
        if declined:
            return declined
        if fix.root in new_roots:
            root_range = new_roots[fix.root]
            why = f"the model needs `{fix.name}` to be {expr} (torch's new root `{fix.root}` in {range_text(*root_range)})"
        else:
            root_range = roots[fix.root]
            if fix.scale == 1 and fix.offset == 0:  # one dim now: both declared ranges hold
                root_range = _intersect(root_range, declared)
            why = f"the model combines these sizes, so `{fix.name}` is always {expr}"
        self.spec = self.spec.derive(fix.name, fix.root, fix.scale, fix.offset, root_range)
        return ShapeRepair(FixKind.RELATE, fix.name, where, f"{fix.name} {range_text(*declared)}", expr, why + _at(guard), True, fix.text, guard and guard[0])

    def _resize(self, name: str, declared: tuple[int | None, int | None], root: int | None = None) -> int | None:
        """Re-size every example dim of root `name` so the root is `root` (default: >= 2); None if the model rejects it."""
        root = max(2, declared[0] or 0) if root is None else root
        if root is None or (declared[1] is not None and root > declared[1]) or (declared[0] is not None and root < declared[0]):
            return None
        saved = dict(self.bound)
        for e in self.entries(name):
            self.bound[e.input] = _resized(self.bound[e.input], e.dim % self.bound[e.input].dim(), e.size_for(root))
        try:
            with torch.no_grad(), quiet_torch_logs():
                self.module(*self.args, **self.kwargs)
        except Exception:  # the model needs that size: fall back to specializing
            self.bound = saved
            return None
        self._guards = None
        return root

    def _restore(self, name: str) -> None:
        for e in self.entries(name):
            self.bound[e.input] = self.original[e.input]
        self._guards = None


def _unprovable_guards(result: Capture, state: _State) -> list[ShapeRepair]:
    """For a violation with no suggested fix: each guard torch could not prove, checked at every size in range.

    Applied (kept as run-time assertions) only when every one holds everywhere; see pt2kit.shapes.unprovable.
    """
    messages = (str(a.exception) for a in result.attempts if a.exception is not None)
    guards = next((g for g in map(unprovable_guards, messages) if g), [])
    checks = [check_guard(g, state.spec) for g in guards]
    if not checks:
        return []
    defer = all(c.holds for c in checks)
    proof = f"torch {torch.__version__.split('+')[0]} cannot prove it and suggests no fix"
    return [ShapeRepair(FixKind.RUNTIME_CHECK, ", ".join(c.roots) or "?", ", ".join(state.where(r) for r in c.roots) or "?",
                        c.guard, "run-time check" if defer else "not deferred",
                        f"{proof}; it holds at each of the {c.points} sizes in the declared range, so the program asserts it"
                        if defer else f"{c} ({proof})", defer)
            for c in checks]


def _other_size(example: int | None, declared: tuple[int | None, int | None]) -> int | None:
    """A second example size for a dim pinned to `example`: twice it if the range allows, else the range's ends."""
    if example is None:
        return None
    low, high = declared
    for size in (2 * example, high, low if low is not None and low >= 2 else None, example + 1):
        if size is not None and size != example and size >= 2 and (high is None or size <= high) and (low is None or size >= low):
            return size
    return None


def _resized(t: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """`t` with dim `dim` of length `size`: its own values repeated (zeros if it was empty)."""
    if t.shape[dim] == 0:
        shape = list(t.shape)
        shape[dim] = size
        return t.new_zeros(shape)
    reps = math.ceil(size / t.shape[dim])
    return torch.cat([t] * reps, dim).narrow(dim, 0, size).clone()


def _intersect(a: tuple[int | None, int | None], b: tuple[int | None, int | None]) -> tuple[int | None, int | None]:
    lows = [x for x in (a[0], b[0]) if x is not None]
    highs = [x for x in (a[1], b[1]) if x is not None]
    return (max(lows) if lows else None, min(highs) if highs else None)


def _at(guard: tuple[SourceLocation, bool] | None) -> str:
    return f" (`{guard[0].code}` at {guard[0]})" if guard else ""


__all__ = ["FixKind", "RepairReport", "RepairedCapture", "ShapeRepair", "capture_with_repair"]
