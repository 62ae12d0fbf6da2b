"""`PartialResult`: what `compile_regions` compiled, what stayed eager and why, and the share of eager time covered."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pt2kit.diagnose.blockers import Blocker
from pt2kit.artifact.regions.archive import EagerEntry, RegionEntry


@dataclass(frozen=True)
class GroupBuild:
    """One package: the group's id, the block it was exported from, how many blocks share it, its build."""

    group: str
    representative: str
    blocks: int
    build_seconds: float
    cached: bool
    size_bytes: int


@dataclass(frozen=True)
class EagerPart:
    """A module left in Python, with the share of the eager time still spent in it (compiled children excluded).

    `kind` is `export` (it did not export), `min-share` (too little time to be worth a
    region), `mismatch` (its compiled region disagreed with eager) or `build` (the AOTInductor build failed)."""

    path: str
    module_class: str
    share: float
    kind: str
    reason: str
    blockers: tuple[Blocker, ...] = ()

    def entry(self) -> EagerEntry:
        return EagerEntry(self.path, self.module_class, self.share, f"{self.kind}: {self.reason}",
                          tuple(b.to_json() for b in self.blockers))

    def __str__(self) -> str:
        reason = self.reason if len(self.reason) <= 240 else self.reason[:237] + "..."
        lines = [f"  {self.path or '(model)'}  {self.module_class}  {self.share:.1%}  {self.kind}: {reason}"]
        for i, b in enumerate(self.blockers, 1):
            lines += [f"      [{i}] {ln}" if j == 0 else f"          {ln}" for j, ln in enumerate(str(b).splitlines())]
        return "\n".join(lines)


@dataclass(frozen=True)
class StaticBatch:
    """A compiled region whose batch dim stayed static, and why: it runs compiled at the built batch only."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"  {self.path or '(model)'}  {self.reason}"


@dataclass(frozen=True)
class PartialResult:
    """What `compile_regions` did.

    Attributes:
        path: the archive written (None when nothing could be compiled, or `output` was None).
        regions: the compiled blocks.
        eager: the modules that stayed eager, each with the reason (and `diagnose`'s blockers).
        groups: one entry per package built.
        eager_seconds: the whole model's eager time per run (on the CPU: one thread's CPU time).
        seconds: wall time of the call.
        static_batch: compiled regions whose batch dim stayed static (other batch sizes run them eagerly), and why.
    """

    path: Path | None
    target: str
    device: str
    regions: tuple[RegionEntry, ...]
    eager: tuple[EagerPart, ...]
    groups: tuple[GroupBuild, ...]
    eager_seconds: float
    seconds: float
    static_batch: tuple[StaticBatch, ...] = ()

    @property
    def ok(self) -> bool:
        return bool(self.regions)

    @property
    def share(self) -> float:
        """The share of the model's eager time spent inside the compiled regions."""
        return sum(r.share for r in self.regions)

    def __str__(self) -> str:
        where = self.path or "(nothing written)"
        n, p = len(self.regions), len(self.groups)
        lines = [f"partial AOT {self.target} -> {where} ({n} region{'s' * (n != 1)} in {p} package{'s' * (p != 1)}, "
                 f"{self.share:.1%} of the eager time; {self.device}; {self.seconds:.1f}s)"]
        if self.regions:
            lines.append("compiled:")
            shared = {g.group: g for g in self.groups}
            for r in self.regions:
                g = shared.get(r.group)
                pack = f"package {r.group}" + (f" (shared by {g.blocks})" if g and g.blocks > 1 else "")
                inputs = ", ".join(r.contract.describe(leaf) for leaf in r.contract.inputs)
                lines.append(f"  {r.path or '(model)'}  {r.module_class}  {r.share:.1%}  {pack}  inputs {inputs}")
        if self.static_batch:
            lines.append("batch stayed static (other batch sizes run these blocks eagerly):")
            lines += [str(s) for s in self.static_batch]
        if self.eager:
            lines.append("stayed eager:")
            lines += [str(e) for e in self.eager]
        if not self.regions:
            lines.append("no submodule exported; see the blockers above (or `pt2kit diagnose TARGET`)")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "path": str(self.path) if self.path else None, "target": self.target, "device": self.device,
            "share": self.share, "eager_seconds": self.eager_seconds, "seconds": self.seconds,
            "regions": [r.to_json() for r in self.regions],
            "eager": [{**e.entry().to_json(), "kind": e.kind, "reason": e.reason} for e in self.eager],
            "groups": [g.__dict__ for g in self.groups],
            "static_batch": [{"path": s.path, "reason": s.reason} for s in self.static_batch],
        }
