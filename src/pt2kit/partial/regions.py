"""Choose the regions: the largest submodules that export, top-down, grouped by class, config and shapes.

A module that exports covers its children, so its children are not tried. Blocks of one group (same class,
same printed config, same parameter shapes and dtypes, same small scalar tensors, same input shapes) are
exported once, from the first of them, and share one package; each loads its own weights at run time.
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
from pt2kit.shapes.spec import DynamicSpec
from pt2kit.target.resolve import Target, forward_parameters

_SCALARS = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class Candidate:
    """A submodule that exported: the program shared by its group is in `RegionPlan.programs`."""

    path: str
    group: str
    seconds: float
    share: float
    calls: int


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


def region_spec(module: nn.Module, record: ModuleCalls) -> DynamicSpec | None:
    """The dims that took different sizes across the recorded calls become dynamic (`infer_shapes`)."""
    if len(record.calls) < 2:
        return None
    try:
        spec = infer_shapes(record.calls, forward_parameters(module)).spec
    except Pt2kitError:  # calls differ in rank or inputs: export the first call's shapes only
        return None
    # the observed sizes are examples, not bounds: let export find the range the code allows
    return DynamicSpec(tuple(dataclasses.replace(e, min=None, max=None) for e in spec.entries)) if spec.entries else None


def export_region(module: nn.Module, record: ModuleCalls, spec_text: str, source, *, fix: bool) -> ExportResult:
    """Export one submodule on the first input it was called with (raises on failure)."""
    spec = region_spec(module, record)
    if spec is not None:
        example = max(range(len(record.calls)), key=lambda i: _total_size(record.calls[i]))
        args, kwargs = record.calls[example]
        try:
            return export_program(Target(spec_text, module, args, kwargs, source), None, dynamic=spec,
                                  check_specialization=False, fix=fix)
        except Exception:  # the code pins a dim that varied: a static region still serves the first call's shapes
            pass
    args, kwargs = record.calls[0]
    return export_program(Target(spec_text, module, args, kwargs, source), None, dynamic="", check_specialization=False, fix=fix)


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
                    programs[key] = export_region(module, record, name, source, fix=fix)
                    representatives[key] = path
                except Exception as exc:  # every failure is data for the report; the children are tried next
                    failures[key] = Rejected(path, key, "export", _first_line(exc), share, path, exc)
        if key in programs:
            regions.append(Candidate(path, key, record.seconds, share, record.count))
            continue
        first = failures[key]
        rejected.append(Rejected(path, key, "export", first.reason, share, first.path, first.error))
        pending = children.get(path, []) + pending
    return RegionPlan(regions, rejected, programs, representatives, trace)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"[:400]
    return (lines[0] if lines else type(exc).__name__)[:400]
