"""Choose the regions: the largest submodules that export, top-down, grouped by class, config and shapes.

A module that exports covers its children, so its children are not tried. Blocks of one group (same class,
same printed config, same parameter shapes and dtypes, same small scalar tensors, same input shapes) are
exported once, from the first of them, and share one package; each loads its own weights at run time.

A region follows the model's batch: dim 0 of each of its tensor inputs whose size is the model's batch (dim 0
of the model's first tensor input) is one dynamic dim `batch`, as `--dynamic auto` leaves a batch dim the code
does not pin, so a region built at batch 2 also serves batch 3. Where the code pins it, or the example batch is
1 (export specializes size 1), the region is exported static and `Candidate.static` says why.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pt2kit import progress
from pt2kit.errors import Pt2kitError
from pt2kit.export.program import ExportResult, export_program
from pt2kit.partial.trace import CallTrace, ModuleCalls, call_signature
from pt2kit.shapes.inference import infer_shapes
from pt2kit.shapes.spec import DimEntry, DynamicSpec
from pt2kit.target.resolve import Target, forward_parameters

_SCALARS = (bool, int, float, str, type(None))
BATCH = "batch"  # the name of the model's batch dim in every region's contract


@dataclass(frozen=True)
class Candidate:
    """A submodule that exported: the program shared by its group is in `RegionPlan.programs`."""

    path: str
    group: str
    seconds: float
    share: float
    calls: int
    static: str = ""  # why the model's batch is not dynamic in this region ("" when it is, or no input carries it)


@dataclass(frozen=True)
class Rejected:
    """A submodule tried and left eager. `error` is what export said; `representative` is the block of the same
    group that was actually tried (the group shares the verdict)."""

    path: str
    group: str
    kind: str  # "export" | "min-share"
    reason: str
    share: float
    representative: str
    error: BaseException | None = field(default=None, compare=False, repr=False)


@dataclass
class RegionPlan:
    """Regions to compile, what stayed eager, and one exported program per group."""

    regions: list[Candidate]
    rejected: list[Rejected]
    programs: dict[str, ExportResult]
    representatives: dict[str, str]
    trace: CallTrace
    static: dict[str, str] = field(default_factory=dict)  # group -> why its batch stayed static


@dataclass(frozen=True)
class RegionExport:
    """One group's program, and why the model's batch stayed static in it ("" when it is dynamic, or absent)."""

    result: ExportResult
    static: str = ""


def group_key(module: nn.Module, record: ModuleCalls) -> str:
    """Blocks with equal keys can share one compiled package (only their weights differ)."""
    cls = type(module)
    parts: list[Any] = [f"{cls.__module__}.{cls.__qualname__}", repr(module)]
    for name, t in module.state_dict(keep_vars=True).items():
        parts.append((name, tuple(t.shape), str(t.dtype), str(t.device), t.numel() <= 1 and t.tolist()))
    for m_name, sub in module.named_modules():  # plain Python settings (eps, heads) change the code, not the weights
        settings = sorted((k, repr(v)) for k, v in vars(sub).items()
                          if not k.startswith("_") and k != "training" and isinstance(v, _SCALARS + (tuple,))
                          and (not isinstance(v, tuple) or all(isinstance(x, _SCALARS) for x in v)))
        parts.append((m_name, type(sub).__qualname__, settings))
    parts.append([_shapes(args, kwargs) for args, kwargs in record.calls])
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def _shapes(args: tuple, kwargs: dict) -> str:
    return repr(call_signature(args, kwargs))


def model_batch(trace: CallTrace) -> int | None:
    """The model's batch size: dim 0 of the first tensor input of its first recorded call (None: no such input)."""
    record = trace.records.get("")
    if record is None or not record.calls:
        return None
    first = next((x for x in torch.utils._pytree.tree_leaves(record.calls[0]) if isinstance(x, torch.Tensor) and x.dim()), None)
    return None if first is None else int(first.shape[0])


def batch_inputs(module: nn.Module, record: ModuleCalls, batch: int | None) -> tuple[str, ...]:
    """The region's top-level tensor inputs whose dim 0 is the model's batch in every recorded call."""
    if batch is None:
        return ()
    names = forward_parameters(module)
    found: list[str] | None = None
    for args, kwargs in record.calls:
        if len(args) > len(names):
            return ()  # `*args`: positional inputs without names cannot be given a dim
        bound = {**dict(zip(names, args)), **kwargs}
        here = [n for n, v in bound.items() if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == batch]
        found = here if found is None else [n for n in found if n in here]
    return tuple(found or ())


def region_spec(module: nn.Module, record: ModuleCalls, batch: int | None = None) -> DynamicSpec | None:
    """The dims that took different sizes across the recorded calls (`infer_shapes`), and the model's batch.

    Dim 0 of each input in `batch_inputs` becomes the shared dim `batch` unless the calls already made it dynamic.
    """
    entries: list[DimEntry] = []
    if len(record.calls) >= 2:
        try:
            entries = list(infer_shapes(record.calls, forward_parameters(module)).spec.entries)
        except Pt2kitError:  # calls differ in rank or inputs: export the first call's shapes only
            entries = []
    taken = {e.name for e in entries}
    name = BATCH if BATCH not in taken else next(f"{BATCH}_{i}" for i in range(2, 99) if f"{BATCH}_{i}" not in taken)
    varied = {(e.input, e.dim) for e in entries}
    if batch is not None and batch >= 2:
        entries += [DimEntry(inp, 0, name) for inp in batch_inputs(module, record, batch) if (inp, 0) not in varied]
    # the observed sizes are examples, not bounds: let export find the range the code allows
    return DynamicSpec(tuple(dataclasses.replace(e, min=None, max=None) for e in entries)) if entries else None


def export_region(module: nn.Module, record: ModuleCalls, spec_text: str, source, *, fix: bool,
                  batch: int | None = None) -> RegionExport:
    """Export one submodule, its batch dim dynamic where the code allows (raises when even a static export fails).

    Tries the full spec (dims that varied across calls, and the model's batch), then only the dims that varied,
    then the first call's shapes; the first attempt's error says why the batch stayed static.
    """
    carries = batch_inputs(module, record, batch)
    attempts = [region_spec(module, record, batch), region_spec(module, record)]
    static, tried = "", []
    for spec in attempts:
        if spec is None or spec in tried:
            continue
        tried.append(spec)
        example = max(range(len(record.calls)), key=lambda i: _total_size(record.calls[i]))
        args, kwargs = record.calls[example]
        try:
            result = export_program(Target(spec_text, module, args, kwargs, source), None, dynamic=spec,
                                    check_specialization=False, fix=fix)
        except Exception as exc:  # the code pins a dim: try fewer dynamic dims, then a static region
            static = static or f"export with a dynamic batch failed: {_headline(exc)}"
            continue
        return RegionExport(result, static or _batch_outcome(result, carries, batch))
    args, kwargs = record.calls[0]
    result = export_program(Target(spec_text, module, args, kwargs, source), None, dynamic="", check_specialization=False, fix=fix)
    if carries and not static:
        static = f"the example batch is {batch}: export specializes a dim of size 1 (give an input with batch 2 or more)"
    return RegionExport(result, static)


def _batch_outcome(result: ExportResult, carries: tuple[str, ...], batch: int | None) -> str:
    """Why the batch is static in an exported program that was asked to make it dynamic ("" when it is dynamic)."""
    if not carries:
        return ""
    if batch is not None and batch < 2:
        return f"the example batch is {batch}: export specializes a dim of size 1 (give an input with batch 2 or more)"
    pinned = [leaf.name for leaf in result.manifest.inputs if leaf.name in carries and leaf.shape and isinstance(leaf.shape[0], int)]
    if not pinned:
        return ""
    repairs = [str(r) for r in (result.shape_repair.repairs if result.shape_repair else ()) if f"`{BATCH}" in str(r)]
    return repairs[0] if repairs else f"export kept dim 0 of {', '.join(f'`{n}`' for n in pinned)} at {batch} (the code fixes it)"


def _total_size(call: tuple[tuple, dict]) -> int:
    return sum(x.numel() for x in torch.utils._pytree.tree_leaves(call) if isinstance(x, torch.Tensor))


def plan_regions(model: nn.Module, trace: CallTrace, *, target_spec: str, source=None, min_share: float = 0.02,
                 fix: bool = True) -> RegionPlan:
    """Walk the module tree top-down and keep the largest submodules that export.

    Args:
        model: the whole model.
        trace: from `trace_calls`.
        target_spec: the TARGET text, to name regions in reports (`file.py:NAME` + `.path`).
        source: the Python module the model came from (for `--fix`'s rewrites and report lines).
        min_share: a module whose share of the eager time is below this is not compiled (nor are its children).
        fix: rewrite data-dependent branches into `torch.cond` first (`pt2kit export --fix`).
    """
    regions: list[Candidate] = []
    rejected: list[Rejected] = []
    programs: dict[str, ExportResult] = {}
    representatives: dict[str, str] = {}
    failures: dict[str, Rejected] = {}
    static: dict[str, str] = {}
    batch = model_batch(trace)
    pending = [""]
    children = {path: [f"{path}.{n}" if path else n for n, _ in m.named_children()] for path, m in model.named_modules()}
    while pending:
        path = pending.pop(0)
        record = trace.records.get(path)
        if record is None or not record.calls:  # never called itself (a ModuleList), or never ran: try its children
            pending = children.get(path, []) + pending
            continue
        module, share = record.module, trace.share(path)
        key = group_key(module, record)
        if share < min_share:
            rejected.append(Rejected(path, key, "min-share", f"{share:.1%} of the eager time, below --min-share {min_share:.1%}",
                                     share, path))
            continue
        if key not in programs and key not in failures:
            name = f"{target_spec}.{path}" if path else target_spec
            with progress.stage(f"export {path or '(model)'} ({type(module).__name__})"):
                try:
                    exported = export_region(module, record, name, source, fix=fix, batch=batch)
                    programs[key], static[key] = exported.result, exported.static
                    representatives[key] = path
                except Exception as exc:  # every failure is data for the report; the children are tried next
                    failures[key] = Rejected(path, key, "export", _headline(exc), share, path, exc)
        if key in programs:
            regions.append(Candidate(path, key, record.seconds, share, record.count, static[key]))
            continue
        first = failures[key]
        rejected.append(Rejected(path, key, "export", first.reason, share, first.path, first.error))
        pending = children.get(path, []) + pending
    return RegionPlan(regions, rejected, programs, representatives, trace, static)


def _headline(exc: BaseException) -> str:
    """The message's first line, with the next one when it ends in `:` (torch's "...failed:" headings)."""
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"[:400]
    return (lines[0] if lines else type(exc).__name__)[:400]
