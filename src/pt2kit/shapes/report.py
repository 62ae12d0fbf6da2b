"""What shape repair did: each change (`ShapeRepair`) and the whole report (`RepairReport`).

`pt2kit.shapes.repair` makes the changes; these types describe them for the command line, `--json`,
the manifest's notes and `ExportResult.shape_repair`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from pt2kit.capture.capture import SourceLocation
from pt2kit.shapes.spec import DynamicSpec


class FixKind(str, Enum):
    NARROW = "narrow"  # the dim's range became smaller
    SPECIALIZE = "specialize"  # the dim became a constant
    RELATE = "relate"  # the dim became equal to, or derived from, another
    RESIZE_EXAMPLE = "resize-example"  # the example was re-sized so size 0/1 does not pin the dim
    RUNTIME_CHECK = "runtime-check"  # a guard torch cannot prove, true at every size in range: kept as an assertion

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ShapeRepair:
    """One change pt2kit made (or declined to make) to the declared dynamic shapes."""

    kind: FixKind
    dim: str
    where: str  # the input dims it covers: `x:0, mask:0`
    before: str
    after: str
    reason: str
    applied: bool = True
    suggestion: str = ""  # torch's line, as printed
    location: SourceLocation | None = None

    def __str__(self) -> str:
        verb = "" if self.applied else "NOT applied: "
        return f"{verb}{self.kind} `{self.dim}` ({self.where}): {self.before} -> {self.after}; {self.reason}"

    def to_json(self) -> dict:
        return {
            "kind": self.kind.value, "dim": self.dim, "where": self.where, "before": self.before, "after": self.after,
            "reason": self.reason, "applied": self.applied, "suggestion": self.suggestion,
            "location": self.location.to_json() if self.location else None,
        }


@dataclass(frozen=True)
class RepairReport:
    """What repair did: the declared spec, the final one, each change, and the example sizes used.

    Attributes:
        declared: the spec as the user gave it.
        final: the spec the program was (or would be) exported with.
        repairs: every change, applied or declined, in order.
        rounds: how many exports it took.
        example_shapes: input -> shape traced with, for inputs whose example was resized.
        fix_applied: the branch rewrite (`--fix`) ran before capture.
    """

    declared: DynamicSpec
    final: DynamicSpec
    repairs: tuple[ShapeRepair, ...] = ()
    rounds: int = 1
    example_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    fix_applied: bool = False

    @property
    def declined(self) -> tuple[ShapeRepair, ...]:
        return tuple(r for r in self.repairs if not r.applied)

    @property
    def changed(self) -> bool:
        return any(r.applied for r in self.repairs)

    def __str__(self) -> str:
        lines = [f"shape repair ({self.rounds} export{'s' if self.rounds != 1 else ''}):"]
        lines += [f"  - {r}" for r in self.repairs]
        if self.changed:
            lines.append(f"  final spec: --dynamic {self.final}")
            lines += ["    " + ln for ln in self.final.code().splitlines()]
        return "\n".join(lines)

    def failure_hint(self) -> str:
        """For a failed export: why repair stopped, and the ways out, as paste-able specs."""
        false_guards = [r for r in self.declined if r.kind is FixKind.RUNTIME_CHECK]
        if false_guards:
            lines = ["torch could not prove these guards over the declared range, and pt2kit could not show that they always hold:"]
            lines += [f"  - {r.reason}" for r in false_guards]
            lines.append("  declare a range where they hold, or export with `--fix` if a branch in your code decides on the size")
            return "\n".join(lines)
        if not self.declined:
            return ""
        narrowed = self.final
        for r in self.declined:
            narrowed = _apply_declined(narrowed, r)
        lines = ["pt2kit did not apply torch's suggested fix, because it would bake in one side of a shape branch:"]
        lines += [f"  - {r}" for r in self.declined]
        if not self.fix_applied:
            lines.append("  either export with `--fix` (rewrites the branch into torch.cond and keeps the declared range),")
            lines.append(f"  or accept the narrower spec: --dynamic {narrowed}")
        else:
            lines.append(f"  the branch is still there after --fix; accept the narrower spec: --dynamic {narrowed}")
        lines += ["    " + ln for ln in narrowed.code().splitlines()]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "declared": str(self.declared), "final": str(self.final), "final_code": self.final.code(),
            "rounds": self.rounds, "repairs": [r.to_json() for r in self.repairs],
            "example_shapes": {k: list(v) for k, v in self.example_shapes.items()}, "fix_applied": self.fix_applied,
        }


def range_text(low: int | None, high: int | None) -> str:
    return f"[{'' if low is None else low}, {'' if high is None else high}]".replace("[, ]", "unbounded")


def _apply_declined(spec: DynamicSpec, r: ShapeRepair) -> DynamicSpec:
    """The spec as it would be had a declined fix been applied (for the advice)."""
    if r.kind is FixKind.NARROW:
        low, high = (None if s.strip() == "" else int(s) for s in r.after.strip("[]").split(","))
        return spec.with_range(r.dim, low, high)
    if r.kind is FixKind.SPECIALIZE:
        return spec.without(r.dim)
    return spec
