"""What `pt2kit verify` found: one `OutputCheck` per output leaf, each with its `Mismatch`es, in a `VerifyReport`.

`__str__` renders a tick or a cross per output with its largest errors (as Optimum's exporter validation does);
`to_json()` is the `--json` document (docs/verify.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from pt2kit.verify.cases import DimPlan, InputDraw, VerifyCase
from pt2kit.verify.compare import MismatchKind, Tolerance

SHOWN_MISMATCHES = 3  # per output in the text report; to_json() has all


@dataclass(frozen=True)
class Mismatch:
    """One way one output differs on one input."""

    kind: MismatchKind
    case: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail} on {self.case}"

    def to_json(self) -> dict:
        return {"kind": self.kind.value, "case": self.case, "detail": self.detail}


@dataclass(frozen=True)
class OutputCheck:
    """One output leaf over every input: its largest errors, the input it was worst on, and each mismatch."""

    name: str
    dtype: str | None
    tolerance: Tolerance
    max_abs_err: float
    max_rel_err: float
    worst_input: str
    cases: int
    mismatches: tuple[Mismatch, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.mismatches

    @property
    def reason(self) -> str | None:
        """The first mismatch, and how many more; None when the output passed."""
        if not self.mismatches:
            return None
        more = len(self.mismatches) - 1
        return str(self.mismatches[0]) + (f" (and {more} more)" if more else "")

    def __str__(self) -> str:
        mark = "✓" if self.passed else "✗"
        errors = f"max abs err {self.max_abs_err:.3g}, max rel err {self.max_rel_err:.3g}" if self.dtype else "constant"
        line = f"{mark} {self.name}: {errors} ({self.tolerance}; {self.tolerance.basis}), worst on {self.worst_input}"
        shown = [f"    {m}" for m in self.mismatches[:SHOWN_MISMATCHES]]
        if len(self.mismatches) > SHOWN_MISMATCHES:
            shown.append(f"    ... {len(self.mismatches) - SHOWN_MISMATCHES} more on other inputs (--json lists every one)")
        return "\n".join([line] + shown)

    def to_json(self) -> dict:
        return {
            "name": self.name, "passed": self.passed, "dtype": self.dtype, "atol": self.tolerance.atol,
            "rtol": self.tolerance.rtol, "tolerance_basis": self.tolerance.basis, "max_abs_err": self.max_abs_err,
            "max_rel_err": self.max_rel_err, "worst_input": self.worst_input, "cases": self.cases,
            "reason": self.reason, "mismatches": [m.to_json() for m in self.mismatches],
        }


@dataclass(frozen=True)
class CaseError:
    """An input on which the eager model or the artifact raised instead of returning."""

    case: str
    side: str  # "eager" | "artifact"
    message: str

    def __str__(self) -> str:
        hint = ("; the sampled input may be outside what the model accepts: give value ranges with "
                "`--input NAME=int64[...]@LOW..HIGH`" if self.side == "eager" else "")
        return f"✗ the {self.side} model raised on {self.case}: {self.message}{hint}"

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class VerifyReport:
    """The result of `verify_outputs`: every output's check and every input that could not be run."""

    artifact: str
    target: str
    kind: str
    device: str
    cases: tuple[VerifyCase, ...]
    dims: tuple[DimPlan, ...]
    draws: tuple[InputDraw, ...]
    outputs: tuple[OutputCheck, ...]
    errors: tuple[CaseError, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.outputs) and all(o.passed for o in self.outputs)

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the outputs that failed."""
        return tuple(o.name for o in self.outputs if not o.passed)

    def __str__(self) -> str:
        lines = [f"verify {self.artifact} ({self.kind}, {self.device}) against {self.target} on {len(self.cases)} inputs"]
        lines += [f"  dim    {d}" for d in self.dims]
        lines += [f"  input  {d}" for d in self.draws]
        lines.append("  cases  " + "; ".join(map(str, self.cases)))
        lines += [f"  note   {n}" for n in self.notes]
        lines += [f"  {o}" for o in self.outputs]
        lines += [f"  {e}" for e in self.errors]
        lines.append(self.summary())
        return "\n".join(lines)

    def summary(self) -> str:
        if self.ok:
            return f"verified: {len(self.outputs)} output(s) match on {len(self.cases)} inputs"
        parts = []
        if self.failed:
            parts.append(f"{len(self.failed)} of {len(self.outputs)} outputs differ ({', '.join(self.failed)})")
        if self.errors:
            parts.append(f"{len(self.errors)} input(s) raised")
        if not self.outputs and not self.errors:
            parts.append("no output was compared")
        return "verification failed: " + "; ".join(parts)

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "artifact": self.artifact, "target": self.target, "kind": self.kind, "device": self.device,
            "cases": [c.to_json() for c in self.cases], "dims": [d.to_json() for d in self.dims],
            "inputs": [d.to_json() for d in self.draws], "outputs": [o.to_json() for o in self.outputs],
            "errors": [e.to_json() for e in self.errors], "notes": list(self.notes), "summary": self.summary(),
        }
