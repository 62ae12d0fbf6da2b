"""What `pt2kit.bench` measured: one row per mode and batch size, and the report around them.

Every figure's meaning is stated here once, because a number without its definition
is not a benchmark:

- `build_s`: seconds to make the artifact from the model: export (`export`), export plus
  AOTInductor compile (`aoti`), ONNX export (`onnxruntime`), the first call at this batch size
  (`compile`: Dynamo and Inductor work on the first call). None for eager.
- `cold_start_s`: load plus the first call at this batch size: `pt2kit.load` (`export`, `aoti`),
  `aoti_load_package` (`aoti-raw`), creating the `InferenceSession` (`onnxruntime`); for `compile`
  the first call, which is the compile.
- `p50_ms`, `p90_ms`, `p99_ms`: steady-state latency of one call after warm-up, percentiles with
  linear interpolation. On CUDA, timed with CUDA events around the call, the GPU synchronized
  before and after each call. The harness overhead (`overhead_ms`) is not subtracted.
- `throughput`: items per second at that latency, `batch_size * 1000 / p50_ms`.
- `peak_mem_bytes`: memory one steady-state call adds above what was in use before it
  (activations, workspace). CUDA: `torch.cuda.max_memory_allocated` minus `memory_allocated`
  before the call. CPU: the process's resident-set high-water mark (VmHWM, reset through
  `/proc/self/clear_refs`) minus its resident set before the call; pages the allocator reuses
  are not new, so this is a lower bound. None where it cannot be measured.
- `artifact_bytes`: size on disk of what the mode built (`.pt2`, package, `.onnx` with its data).
- `outputs_match`: the mode's outputs at this batch size agree with eager's within `pt2kit verify`'s default
  tolerances (checked once, before timing; `benchmark/agreement.py`). A mode that disagrees is `wrong`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from pt2kit.tables import render_table


class BenchMode(str, Enum):
    """A way to run the model. `AOTI_RAW` is the AOTI package without pt2kit's input checks."""

    EAGER = "eager"
    COMPILE = "compile"
    EXPORT = "export"
    AOTI = "aoti"
    AOTI_RAW = "aoti-raw"
    ONNXRUNTIME = "onnxruntime"
    ARTIFACT = "artifact"  # an existing package (`--artifact PATH`, e.g. what `pt2kit tune` wrote)

    def __str__(self) -> str:
        return self.value


class ModeStatus(str, Enum):
    OK = "ok"
    SKIPPED = "skipped"  # not available here (a missing package, a provider); not an error
    FAILED = "failed"  # the build or a call raised
    WRONG = "wrong"  # it ran, but its outputs disagree with eager's: its timings are not a result
    CHANGED_MODEL = "changed-model"  # building or calling it changed the user's model (restored); figures dropped

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class BenchRow:
    """One mode at one batch size (see the module docstring for each figure's definition)."""

    mode: BenchMode
    batch_size: int
    build_s: float | None
    cold_start_s: float | None
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput: float
    peak_mem_bytes: int | None
    artifact_bytes: int | None
    samples: int
    outputs_match: bool | None = None  # None: eager itself (the reference), or not checked

    def to_json(self) -> dict:
        return {
            "mode": self.mode.value, "batch_size": self.batch_size,
            "build_s": _round(self.build_s, 4), "cold_start_s": _round(self.cold_start_s, 4),
            "p50_ms": _round(self.p50_ms, 6), "p90_ms": _round(self.p90_ms, 6), "p99_ms": _round(self.p99_ms, 6),
            "mean_ms": _round(self.mean_ms, 6), "throughput": _round(self.throughput, 2),
            "peak_mem_bytes": self.peak_mem_bytes, "artifact_bytes": self.artifact_bytes, "samples": self.samples,
            "outputs_match": self.outputs_match,
        }


@dataclass(frozen=True)
class ModeOutcome:
    """How a mode fared as a whole: ok, skipped (with why), or failed (with the error)."""

    mode: BenchMode
    status: ModeStatus
    reason: str = ""
    batch_build: str = ""  # "static" | "dynamic" | "per-batch" for the artifact modes

    def to_json(self) -> dict:
        return {"mode": self.mode.value, "status": self.status.value, "reason": self.reason, "batch_build": self.batch_build}


@dataclass(frozen=True)
class Machine:
    """Where the figures were taken."""

    platform: str
    cpu: str
    cpu_count: int
    python: str
    torch: str
    gpu: str | None
    date: str

    def __str__(self) -> str:
        gpu = f", {self.gpu}" if self.gpu else ""
        return f"{self.cpu} ({self.cpu_count} cores){gpu}; {self.platform}; Python {self.python}, torch {self.torch}; {self.date}"

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class BenchReport:
    """The result of `pt2kit.bench`: every row, every mode's outcome, and how it was measured.

    Attributes:
        target: the `TARGET` benchmarked.
        device, dtype: where and in what precision it ran.
        rows: one `BenchRow` per mode that ran and batch size, in mode order.
        outcomes: one `ModeOutcome` per requested mode (and `aoti-raw` when `aoti` ran).
        overhead_ms: p50 of an empty call through the same timing loop (the floor of any latency).
        warmup, iters: calls per mode and batch size before timing, and timed.
        machine: where it ran.
        notes: how batches were built, what was skipped, anything a reader should know.
    """

    target: str
    device: str
    dtype: str
    rows: tuple[BenchRow, ...]
    outcomes: tuple[ModeOutcome, ...]
    overhead_ms: float
    warmup: int
    iters: int
    machine: Machine
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """No requested mode failed, computed wrong outputs or changed the model (skipped ones do not count)."""
        return not any(o.status in (ModeStatus.FAILED, ModeStatus.WRONG, ModeStatus.CHANGED_MODEL) for o in self.outcomes)

    def row(self, mode: BenchMode | str, batch_size: int) -> BenchRow | None:
        """The row for `mode` at `batch_size`, or None if it did not run."""
        mode = BenchMode(mode)
        return next((r for r in self.rows if r.mode is mode and r.batch_size == batch_size), None)

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys(r.batch_size for r in self.rows))

    def to_json(self) -> dict:
        """`modes` maps each mode to its outcome and, per batch size, `p50_ms` and the rest; `results` is flat."""
        modes: dict[str, dict] = {}
        for outcome in self.outcomes:
            entry = outcome.to_json()
            entry["batches"] = {str(r.batch_size): r.to_json() for r in self.rows if r.mode is outcome.mode}
            modes[outcome.mode.value] = entry
        return {
            "target": self.target, "device": self.device, "dtype": self.dtype, "ok": self.ok,
            "overhead_ms": _round(self.overhead_ms, 6), "warmup": self.warmup, "iters": self.iters,
            "interleaved": True, "batch_sizes": list(self.batch_sizes),
            "machine": self.machine.to_json(), "modes": modes,
            "results": [r.to_json() for r in self.rows], "notes": list(self.notes),
        }

    def __str__(self) -> str:
        headers = ["mode", "batch", "outputs", "build s", "cold s", "p50 ms", "p90 ms", "p99 ms", "items/s", "peak mem", "artifact"]
        body = [
            [r.mode.value, str(r.batch_size), {True: "match", False: "WRONG", None: "-"}[r.outputs_match],
             _fmt(r.build_s, ".2f"), _fmt(r.cold_start_s, ".3f"),
             f"{r.p50_ms:.3f}", f"{r.p90_ms:.3f}", f"{r.p99_ms:.3f}", f"{r.throughput:,.0f}",
             _size(r.peak_mem_bytes), _size(r.artifact_bytes)]
            for r in sorted(self.rows, key=lambda r: (r.batch_size, list(BenchMode).index(r.mode)))
        ]
        lines = [f"bench {self.target} on {self.device} ({self.dtype}): {self.iters} timed calls per mode and batch "
                 f"after {self.warmup} warm-up, interleaved"]
        lines.append(render_table(headers, body, right=range(3, len(headers))))
        lines.append(f"harness overhead (an empty call through the same timing loop): {self.overhead_ms * 1000:.1f} us")
        for o in self.outcomes:
            if o.status is not ModeStatus.OK:
                lines.append(f"{o.status}: {o.mode}: {o.reason}")
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"machine: {self.machine}")
        return "\n".join(lines)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
