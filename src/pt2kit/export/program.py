"""The export stage: target -> capture -> manifest -> `.pt2` on disk.

`export_program` is what `pt2kit export` runs. It captures with the modes `mode` allows,
notes any shape decisions that were baked in, and writes a standard `.pt2` with the
pt2kit manifest inside, atomically.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pt2kit import progress
from pt2kit.capture.capture import Capture, CaptureMode, failure_message
from pt2kit.capture.specialization import Specialization, check_specializations
from pt2kit.errors import ExportFailed, InputSpecError
from pt2kit.artifact.manifest import Manifest, build_manifest, with_value_ranges
from pt2kit.artifact.package import save_program
from pt2kit.pytrees.types import manifest_fields, register_model_types
from pt2kit.rewrite.fix import FixResult, fix_target
from pt2kit.shapes.inference import ShapeInference, infer_shapes
from pt2kit.shapes.repair import RepairReport, capture_with_repair
from pt2kit.shapes.spec import DynamicSpec, parse_dynamic, to_dynamic_shapes
from pt2kit.target.resolve import Target


@dataclass(frozen=True)
class ExportResult:
    """What `export_program` produced.

    Attributes:
        path: the `.pt2` written (None when `output` was None).
        program: the captured `ExportedProgram`.
        manifest: its manifest.
        capture: every capture attempt.
        specializations: Python decisions on input sizes that export baked in.
    """

    path: Path | None
    program: torch.export.ExportedProgram
    manifest: Manifest
    capture: Capture
    specializations: tuple[Specialization, ...] = field(default=())
    shape_repair: RepairReport | None = None  # what repair changed in the dynamic shapes (pt2kit.shapes.repair)
    inferred: ShapeInference | None = None  # the spec proposed from `samples` (pt2kit.shapes.inference)
    fix: FixResult | None = None  # the branches `--fix` rewrote into torch.cond (pt2kit.rewrite.fix)
    specialization_not_run: str | None = None  # why the shape-specialization check did not run (None: it ran, or was off)

    def __str__(self) -> str:
        m = self.manifest
        lines = [f"exported {m.target or 'model'} ({self.capture.mode}) -> {self.path or '(not saved)'}"]
        lines += [f"  input  {m.describe(leaf)}" for leaf in m.inputs]
        lines += [f"  output {m.describe(leaf)}" for leaf in m.outputs]
        lines += [f"  dim    {d.describe()}" for d in m.dims]
        lines += [f"  pytree {r['type']} registered as a pytree node (flattened by attribute; pt2kit.load registers it again, "
                  "plain torch.export.load after `pt2kit.register_types(path)`)" for r in m.pytree_types]
        if self.inferred is not None:
            lines += ["  " + ln for ln in str(self.inferred).splitlines()]
        if self.fix is not None:
            lines += ["  " + ln for ln in str(self.fix).splitlines()]
        if self.shape_repair is not None:
            lines += ["  " + ln for ln in str(self.shape_repair).splitlines()]
        if self.specialization_not_run:
            lines.append(f"  note: shape-specialization check not run: {self.specialization_not_run}")
        for s in self.specializations:
            lines.append(f"  note: {s}")
        if self.specializations:
            lines.append("  note: the program accepts only the example's static sizes for those inputs; declare the dim dynamic "
                         "(--dynamic) and use --fix to keep both sides as torch.cond")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "ok": True, "path": str(self.path) if self.path else None, "capture": self.capture.to_json(),
            "manifest": self.manifest.to_json(), "specializations": [s.to_json() for s in self.specializations],
            "shape_repair": self.shape_repair.to_json() if self.shape_repair else None,
            "inferred": self.inferred.to_json() if self.inferred else None,
            "fix": self.fix.to_json() if self.fix else None,
            "specialization_check_not_run": self.specialization_not_run,
        }


def export_program(
    target: Target,
    output: str | os.PathLike | None,
    *,
    mode: str | CaptureMode = CaptureMode.AUTO,
    dynamic: str | DynamicSpec | None = None,
    check_specialization: bool = True,
    repair: bool = True,
    samples: list[tuple[tuple, dict]] | None = None,
    value_ranges: dict[str, tuple[float, float]] | None = None,
    fix: bool = False,
) -> ExportResult:
    """Export `target` to a `.pt2` program with a manifest.

    Args:
        target: from `load_target`.
        output: where to write the `.pt2`; None captures without writing.
        mode: `auto`, `non-strict` or `strict`.
        dynamic: a `--dynamic` spec (text or parsed); defaults to the file's `dynamic`.
        check_specialization: re-trace to find shape branches export baked in.
        repair: on a constraint violation, apply torch's suggested fixes to the dynamic shapes and
            re-export; never narrows a range because of a shape branch (docs/dynamic-shapes.md).
        samples: two or more `(args, kwargs)` input sets; the dims that differ become dynamic
            (instead of `dynamic`), and the sample with the largest-enough sizes is the example.
        value_ranges: input name -> [low, high) of its values, recorded in the manifest for `pt2kit verify`.
        fix: rewrite data-dependent branches into `torch.cond` on a copy of the model first (docs/autofix.md);
            raises `FixFailed` when a branch cannot be rewritten or the rewrite does not match the original.

    Returns:
        An `ExportResult`.

    Raises:
        ExportFailed: no mode could capture the model (`.capture` has every attempt).
        InputSpecError: the dynamic spec does not fit the model's inputs.

    Example:
        >>> result = export_program(load_target("model.py:model"), "model.pt2", dynamic="x:0=batch[1,64]")
    """
    inferred = None
    if samples:  # propose the dynamic dims from the samples (pt2kit.shapes.inference)
        if dynamic is not None:
            raise InputSpecError("give either a dynamic spec or samples to infer it from, not both")
        inferred = infer_shapes(samples, target.parameter_names)
        dynamic = inferred.spec
        target = dataclasses.replace(target, args=samples[inferred.example][0], kwargs=samples[inferred.example][1])
    spec = dynamic if isinstance(dynamic, DynamicSpec) else parse_dynamic(dynamic if dynamic is not None else target.dynamic)
    params = target.parameter_names
    dynamic_shapes = to_dynamic_shapes(spec, params, target.args, target.kwargs)
    fixed = None
    if fix:  # rewrite data-dependent branches into torch.cond on a copy of the model (pt2kit.rewrite.fix)
        fixed = fix_target(target, dynamic_shapes=dynamic_shapes, spec=spec, mode=mode)
        target = dataclasses.replace(target, module=fixed.module)
    register_model_types(target.module, target.args, target.kwargs, params)  # caches, dataclasses: pt2kit.pytrees.types
    with progress.stage(f"export ({CaptureMode(mode).value})"):
        repaired = capture_with_repair(target.module, target.args, target.kwargs, spec, params, mode=mode, repair=repair,
                                       fix_applied=fix)
        result, spec = repaired.capture, repaired.spec
        if not result.ok:
            hint = repaired.report.failure_hint() if repaired.report else ""
            raise ExportFailed("\n".join(filter(None, [failure_message(result), hint])), result)
    specializations: list[Specialization] = []
    not_run = None  # why the check did not run, when it was asked for and could not
    if check_specialization:
        try:
            with progress.stage("check shape specialization"):  # shown failed, not done, when the re-trace failed
                check = check_specializations(target.module, target.args, target.kwargs, params)
                if not check.ran:
                    raise _NotRun(check.not_run)
        except _NotRun as exc:
            not_run = str(exc)
        specializations = list(check.found)
        declared = {f"{e.input}.shape[{e.dim}]" for e in spec.entries}
        # a decision on a declared-dynamic dim is a real guard in the program, not a baked-in branch
        specializations = [s for s in specializations if not set(s.sizes) & declared]
    manifest = build_manifest(
        result.program, parameters=params, dim_names=spec.dim_names(), capture_mode=result.mode,
        target=target.spec, notes=[str(s) for s in specializations] + [f"shape repair: {r}" for r in (repaired.report.repairs if repaired.report else ())]
        + [f"fix: {s}" for s in (fixed.steps if fixed else ())]
        + ([f"shape-specialization check not run: {not_run}"] if not_run else []),
    )
    manifest = manifest.replace(**manifest_fields(result.program))
    if value_ranges:
        manifest = manifest.replace(inputs=with_value_ranges(manifest.inputs, value_ranges))
    path = None
    if output is not None:
        with progress.stage("save .pt2"):
            path = save_program(result.program, manifest, output)
    return ExportResult(path, result.program, manifest, result, tuple(specializations), repaired.report, inferred, fixed,
                        not_run)


class _NotRun(Exception):
    """Raised inside the progress stage so a check that could not run is shown failed, not done."""


__all__ = ["ExportResult", "export_program"]
