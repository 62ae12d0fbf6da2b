"""What `pt2kit tune` found: one result per candidate, and which one it wrote.

- `p50_ms`: median latency of one call after warm-up, every surviving candidate timed round-robin in one
  process (`pt2kit.benchmark.timing`; CUDA: CUDA events, the GPU synchronized around each call).
- `max_abs_err`: the largest |artifact - eager| over every output element and verification input, the eager
  model in float32 on the same device, the artifact's output cast to float32.
- `ok`: built, within the tolerance on every input, and timed. Only an `ok` candidate can be chosen.
- `build_s`: seconds of the AOTInductor build (from the build cache: the original build's time; `cached` says so).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pt2kit.tune.candidates import Candidate


@dataclass(frozen=True)
class CandidateResult:
    """One candidate's fate: built or not, verified or not, and its timing."""

    candidate: Candidate
    ok: bool
    status: str  # "chosen" | "ok" | "failed verification" | "build failed" | "load failed" | "skipped: time budget"
    p50_ms: float | None = None
    p90_ms: float | None = None
    max_abs_err: float | None = None
    build_s: float | None = None
    cached: bool = False
    reason: str = ""

    @property
    def name(self) -> str:
        return self.candidate.name

    def __str__(self) -> str:
        timing = f", p50 {self.p50_ms:.3f} ms" if self.p50_ms is not None else ""
        error = f", max abs err {self.max_abs_err:.2e}" if self.max_abs_err is not None else ""
        return f"{self.name}: {self.status}{timing}{error}" + (f" ({self.reason})" if self.reason else "")

    def to_json(self) -> dict:
        return {"name": self.name, "config": self.candidate.to_json(), "ok": self.ok, "status": self.status,
                "p50_ms": _round(self.p50_ms, 4), "p90_ms": _round(self.p90_ms, 4), "max_abs_err": self.max_abs_err,
                "build_s": _round(self.build_s, 2), "cached": self.cached, "reason": self.reason}


@dataclass(frozen=True)
class TuneReport:
    """The result of `tune_model`.

    Attributes:
        source: the TARGET or .pt2 tuned.
        output: the package written (None when no candidate passed).
        device: `cpu` or `cuda`.
        batch_size: the batch the candidates were timed at (None: the example's inputs as they are).
        atol, rtol: the tolerance against float32 eager.
        chosen: the name of the candidate written, or None.
        candidates: every candidate, in the order tried.
        seconds: wall time of the whole tune.
        notes: anything a reader should know (budget cuts, padding checks, thread counts).
    """

    source: str
    output: Path | None
    device: str
    batch_size: int | None
    atol: float
    rtol: float
    chosen: str | None
    candidates: tuple[CandidateResult, ...]
    seconds: float
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.chosen is not None

    def result(self, name: str) -> CandidateResult:
        return next(r for r in self.candidates if r.name == name)

    def to_json(self) -> dict:
        return {"ok": self.ok, "source": self.source, "output": str(self.output) if self.output else None, "device": self.device,
                "batch_size": self.batch_size, "atol": self.atol, "rtol": self.rtol, "chosen": self.chosen,
                "candidates": [c.to_json() for c in self.candidates], "seconds": round(self.seconds, 2), "notes": list(self.notes)}

    def __str__(self) -> str:
        headers = ["candidate", "status", "p50 ms", "p90 ms", "max abs err", "build s"]
        body = [[r.name, r.status, _fmt(r.p50_ms, ".3f"), _fmt(r.p90_ms, ".3f"), _fmt(r.max_abs_err, ".2e"),
                 _fmt(r.build_s, ".1f") + (" (cache)" if r.cached else "")] for r in self.candidates]
        widths = [max(len(h), *(len(line[i]) for line in body)) if body else len(h) for i, h in enumerate(headers)]
        batch = f", batch {self.batch_size}" if self.batch_size else ""
        lines = [f"tune {self.source} on {self.device}{batch}: {len(self.candidates)} candidate{'s' if len(self.candidates) != 1 else ''}, tolerance atol {self.atol:g} "
                 f"rtol {self.rtol:g} against the eager reference, {self.seconds:.0f}s"]
        lines.append("  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
        for line in body:
            lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        for r in self.candidates:
            if r.reason:
                lines.append(f"  {r.name}: {r.reason}")
        lines += [f"note: {n}" for n in self.notes]
        if self.chosen:
            lines.append(f"chose {self.chosen} -> {self.output}")
        else:
            lines.append("no candidate passed: nothing was written; loosen --atol/--rtol or add --dtypes fp32")
        return "\n".join(lines)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, default=str)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)
