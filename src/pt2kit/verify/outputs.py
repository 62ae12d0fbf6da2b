"""Verify an artifact's numerics against the eager model, for every output, across the dynamic range.

`verify_outputs` runs the original model and the artifact (a `.pt2` program or an AOTInductor package) on the
example inputs and on `samples` random inputs at sizes across each dynamic dim's range (`pt2kit.verify.cases`),
compares every leaf of the output pytree (`pt2kit.verify.compare`), and reports every mismatch at once.

    >>> report = pt2kit.verify_outputs(pt2kit.load_target("model.py:model"), "model.pt2")
    >>> print(report); report.ok
"""

from __future__ import annotations

import copy
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import torch
from torch.utils import _pytree as pytree

from pt2kit import progress
from pt2kit.errors import ArtifactError, Pt2kitError, UsageError
from pt2kit.target.inputs import CAST_DTYPES, dtype_name
from pt2kit.artifact.manifest import Manifest
from pt2kit.compile.dtype import CastInside
from pt2kit.artifact.package import ArtifactKind, artifact_kind, atomic_path, load_program, read_manifest
from pt2kit.runtime.loaded import Artifact, load
from pt2kit.runtime.regions.apply import RegionsArtifact
from pt2kit.target.resolve import Target
from pt2kit.verify.cases import VerifyCase, leaves_and_names, plan_cases
from pt2kit.verify.compare import MismatchKind, Tolerance, compare_leaf, default_tolerance, least_precise
from pt2kit.verify.report import CaseError, Mismatch, OutputCheck, VerifyReport

R = TypeVar("R")


def verify_outputs(
    target: Target,
    artifact: str | os.PathLike | Artifact,
    *,
    samples: int = 8,
    seed: int = 0,
    atol: float | None = None,
    rtol: float | None = None,
    value_ranges: Mapping[str, tuple[float, float]] | None = None,
    max_size: int | None = None,
) -> VerifyReport:
    """Run the eager model and the artifact on the same inputs and compare every output leaf.

    Args:
        target: the model the artifact was built from (`load_target`).
        artifact: a `.pt2` program or AOTInductor package (path), or an `Artifact` from `pt2kit.load`.
        samples: random inputs besides the example; the first two are at every dim's minimum and maximum.
        seed: seed for the random inputs.
        atol, rtol: override the default tolerances (docs/verify.md) for every numeric output.
        value_ranges: input name -> [low, high) to draw its values from; overrides the manifest's `value_range`.
        max_size: test no dynamic dim above this size.

    Returns:
        A `VerifyReport`; `report.ok` is False if any output differs or any input raised.

    Raises:
        ArtifactError: the artifact cannot be loaded.
        InputMismatchError: the target's inputs do not fit the artifact's.
        UsageError: `samples` is negative.

    Example:
        >>> report = verify_outputs(load_target("model.py:model"), "model.pt2", samples=4)
        >>> assert report.ok, report
    """
    if samples < 0:
        raise UsageError(f"`--samples {samples}` is negative; pass 0 to check only the example, or more for random inputs")
    if isinstance(artifact, (str, os.PathLike)):
        with progress.stage("load artifact"):  # a region archive runs inside a copy of the target's model
            artifact = RegionsArtifact(target.module, artifact) if artifact_kind(artifact) is ArtifactKind.REGIONS else load(artifact)
    manifest = artifact.manifest
    leaves, names, spec = leaves_and_names(target.args, target.kwargs, target.parameter_names)
    device = artifact.device if isinstance(artifact, RegionsArtifact) else artifact.built_for
    plan = plan_cases(manifest, names, leaves, samples=samples, seed=seed, value_ranges=value_ranges, max_size=max_size)
    in_dtypes = [leaf.dtype if leaf.kind == "tensor" else None for leaf in manifest.inputs] if manifest else [None] * len(leaves)
    # an artifact built in another floating dtype (`compile --dtype`) takes inputs cast to it
    cast = {d for leaf, d in zip(leaves, in_dtypes)
            if isinstance(leaf, torch.Tensor) and leaf.is_floating_point() and d and d != dtype_name(leaf.dtype)}
    converted = (manifest.extra.get("dtype") if manifest else None) or (min(cast) if cast else None)
    reference, notes = _reference(target.module, device, converted, manifest if manifest and manifest.extra.get("io") == "model" else None)
    notes += list(getattr(artifact, "notes", ()))  # what loading could not restore exactly (a stand-in type)
    if isinstance(artifact, RegionsArtifact):
        notes.append("a region archive has no whole-model contract: random inputs use the example's shapes only")
    elif manifest is None:
        notes.append("the artifact has no pt2kit manifest: random inputs use the example's shapes only")
    compute = least_precise([d for d in in_dtypes if d] + [p.dtype for p in reference.parameters() if p.is_floating_point()])
    tf32 = device != "cpu" and _tf32_enabled(reference)
    overrides = (atol, rtol)

    results: dict[str, list[tuple[VerifyCase, Any, Any]]] = {}
    errors: list[CaseError] = []
    with progress.stage(f"run eager and artifact on {len(plan.cases)} inputs"):
        for case in plan.cases:
            case_leaves = [_to_artifact(v, d, device) for v, d in zip(case.leaves, in_dtypes)]
            expected = _call(reference, case_leaves, spec, seed, case, "eager", errors)
            actual = _call(artifact, case_leaves, spec, seed, case, "artifact", errors) if expected is not _FAILED else _FAILED
            if actual is _FAILED:
                continue
            exp, act = _named(expected), _named(actual)
            for name in list(exp) + [n for n in act if n not in exp]:
                results.setdefault(name, []).append((case, exp.get(name, _ABSENT), act.get(name, _ABSENT)))

    if isinstance(artifact, RegionsArtifact):  # a region that always fell back to eager would pass unseen
        notes.append(artifact.summary())
    order = [o.name for o in manifest.outputs] if manifest else []
    ordered = sorted(results, key=lambda n: (order.index(n) if n in order else len(order), n))
    checks = tuple(_check(name, results[name], compute, device, tf32, overrides, converted is not None) for name in ordered)
    return VerifyReport(
        str(artifact.path), target.spec, artifact.kind.value, device, plan.cases, plan.dims, plan.draws, checks,
        tuple(errors), tuple(notes),
    )


_FAILED = object()
_ABSENT = object()


def _named(outputs: Any) -> dict[str, Any]:
    flat = pytree.tree_flatten_with_path(outputs)[0]
    return {"output" + pytree.keystr(path): value for path, value in flat}


def _call(fn: Callable, leaves: list[Any], spec, seed: int, case: VerifyCase, side: str, errors: list[CaseError]) -> Any:
    """Call with fresh clones (models may mutate inputs) and the same RNG seed on both sides."""
    args, kwargs = pytree.tree_unflatten([v.clone() if isinstance(v, torch.Tensor) else v for v in leaves], spec)
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return fn(*args, **kwargs)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # collected, reported with the case: one bad input must not hide the others
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        prefix = "" if isinstance(exc, Pt2kitError) else f"{type(exc).__name__}: "
        errors.append(CaseError(str(case), side, prefix + text))
        return _FAILED


def _check(name: str, rows: list, compute: str | None, device: str, tf32: bool, overrides, converted: bool) -> OutputCheck:
    first = next((e for _, e, _ in rows if e is not _ABSENT), None)
    if first is None:
        first = next((a for _, _, a in rows if a is not _ABSENT), None)
    is_tensor = isinstance(first, torch.Tensor)
    tol = default_tolerance(first.dtype, compute, device, tf32) if is_tensor else Tolerance(0.0, 0.0, "constant: equal")
    if overrides != (None, None) and not (is_tensor and first.dtype == torch.bool):
        tol = Tolerance(tol.atol if overrides[0] is None else overrides[0], tol.rtol if overrides[1] is None else overrides[1], "--atol/--rtol")
    mismatches: list[Mismatch] = []
    max_abs = max_rel = 0.0
    worst, worst_ratio = str(rows[0][0]), -1.0
    for case, expected, actual in rows:
        if expected is _ABSENT or actual is _ABSENT:
            side = "the artifact" if actual is _ABSENT else "the eager model"
            mismatches.append(Mismatch(MismatchKind.MISSING, str(case), f"{side} does not return `{name}`"))
            if worst_ratio < float("inf"):
                worst, worst_ratio = str(case), float("inf")
            continue
        result = compare_leaf(expected, actual, tol, allow_dtype_change=converted)
        max_abs, max_rel = max(max_abs, result.max_abs_err), max(max_rel, result.max_rel_err)
        ratio = float("inf") if result.problems and result.ratio <= 1 else result.ratio  # shape, NaN: the first such case
        if ratio > worst_ratio:
            worst, worst_ratio = str(case), ratio
        mismatches += [Mismatch(kind, str(case), detail) for kind, detail in result.problems]
    dtype = dtype_name(first.dtype) if is_tensor else None
    return OutputCheck(name, dtype, tol, max_abs, max_rel, worst, len(rows), tuple(mismatches))


def _reference(module: torch.nn.Module, device: str, converted: str | None,
               cast_inside: Manifest | None = None) -> tuple[torch.nn.Module, list[str]]:
    """The eager model to compare with: the target's module, copied when it must move or change dtype.

    `cast_inside`: the artifact computes in `converted` behind the model's own dtypes (its manifest, which has the
    output dtypes): so does the reference (`CastInside`).
    """
    notes: list[str] = []
    current = next((t.device.type for t in module.state_dict().values() if isinstance(t, torch.Tensor)), "cpu")
    dtype = CAST_DTYPES.get(converted or "", None)
    if dtype is None and converted:
        dtype = getattr(torch, converted, None)
    if dtype is not None and all(p.dtype == dtype for p in module.parameters() if p.is_floating_point()):
        dtype = None  # made in that dtype already; buffers it keeps in fp32 on purpose stay so, as `--dtype` keeps them
    if current == device and dtype is None:
        return module, notes
    module = copy.deepcopy(module)
    if dtype is not None:
        module = module.to(dtype)
        notes.append(f"the artifact was built in {dtype_name(dtype)}: the reference is the eager model cast to {dtype_name(dtype)}")
        if cast_inside is not None:
            outs = tuple(getattr(torch, o.dtype, None) if o.kind == "tensor" else None for o in cast_inside.outputs)
            module = CastInside(module, dtype, outs)
    if current != device:
        module = module.to(device)
        notes.append(f"the eager model runs on {device}, where the artifact runs")
    return module, notes


def _to_artifact(value: Any, dtype: str | None, device: str) -> Any:
    if not isinstance(value, torch.Tensor):
        return value
    if dtype and value.is_floating_point() and dtype_name(value.dtype) != dtype:
        value = value.to(getattr(torch, dtype))
    return value.to(device)


def _tf32_enabled(module: torch.nn.Module) -> bool:
    """TF32 is in play for float32 on CUDA: matmuls allowed it, or convolutions (cuDNN's default) in a conv model."""
    matmul = torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest"
    convs = torch.backends.cudnn.allow_tf32 and any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in module.modules())
    return bool(matmul or convs)


def program_target(path: str | os.PathLike) -> Target:
    """A `Target` for a `.pt2` program: its module and saved example inputs, named as its manifest names them.

    Lets `pt2kit compile model.pt2 --verify` check the package against the program it was built from.

    Raises:
        ArtifactError: not a loadable program, or it holds no example inputs.
    """
    import inspect

    program = load_program(path)
    manifest = read_manifest(path)
    if program.example_inputs is None:
        raise ArtifactError(f"`{path}` holds no example inputs to verify with; verify against the model instead: "
                            f"`pt2kit verify path/to/model.py:NAME {path}`")
    args, kwargs = program.example_inputs
    graph_module = program.module()
    names = list(manifest.parameters) if manifest and manifest.parameters else [f"args_{i}" for i in range(len(args))]

    class Program(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.program = graph_module  # a submodule, so .to() and deepcopy move and cast its weights

        def forward(self, *call_args, **call_kwargs):
            return self.program(*call_args, **call_kwargs)

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    Program.forward.__signature__ = inspect.Signature([inspect.Parameter(n, kind) for n in ["self", *names]])
    return Target(str(path), Program(), tuple(args), dict(kwargs))


def write_verified(
    output: str | os.PathLike, write: Callable[[Path], R], target: Target, **verify_options: Any,
) -> tuple[R, VerifyReport]:
    """Build an artifact with `write(path)`, verify it, and put it at `output` only if it passed.

    The artifact is written and verified at a temporary path beside `output`; on failure nothing is left at
    `output` (an older file there is kept untouched), so no file claims to be a good artifact that is not.
    A result with a `path` field is returned with `path` set to `output`.

    Args:
        output: where the verified artifact goes.
        write: builds the artifact at the path it is given (e.g. `export_program` or `compile_package`) and
            returns its result.
        target: the eager model to compare with.
        verify_options: passed to `verify_outputs` (`samples`, `atol`, `rtol`, ...).

    Returns:
        `(write's result, the VerifyReport)`; when the report is not ok, nothing was written at `output`.

    Example:
        >>> result, report = write_verified("m.pt2", lambda p: export_program(target, p), target)
    """
    output = Path(output)
    result: Any = None
    report: VerifyReport | None = None
    try:
        with atomic_path(output) as tmp:
            result = write(tmp)
            report = verify_outputs(target, tmp, **verify_options)
            report = replace(report, artifact=str(output))
            if not report.ok:
                raise _Unverified()
    except _Unverified:
        pass
    if hasattr(result, "path") and hasattr(result, "__dataclass_fields__"):
        result = replace(result, path=output if report.ok else None)
    return result, report


class _Unverified(Exception):
    """Raised inside `atomic_path` so the unverified file is discarded, never moved into place."""


__all__ = ["CaseError", "Mismatch", "OutputCheck", "VerifyReport", "program_target", "verify_outputs", "write_verified"]
