"""Benchmark a model's ways of running side by side: eager, torch.compile, the exported
program, the AOTInductor package and ONNX Runtime, in one process, interleaved.

    >>> report = pt2kit.bench("model.py:model", batch_sizes=[1, 8, 32])
    >>> print(report)
    >>> write_plot(report, "bench.png")

`harness` runs the benchmark, `modes` builds and loads each mode, `model_state` checks and
restores the model after each mode, `timing` times one call, `batching` resizes inputs, `report`
holds the results, `plot` draws them.

May import: `verify` (every mode's outputs are checked with its comparison before timing), `compile`,
`export`, `runtime`, `artifact`, `target`, and the base (`errors`, `progress`, `tables`).
"""

from pt2kit.benchmark.harness import DEFAULT_MODES, bench, parse_modes
from pt2kit.benchmark.plot import write_plot
from pt2kit.benchmark.report import BenchMode, BenchReport, BenchRow, Machine, ModeOutcome, ModeStatus

__all__ = [
    "DEFAULT_MODES", "BenchMode", "BenchReport", "BenchRow", "Machine", "ModeOutcome", "ModeStatus",
    "bench", "parse_modes", "write_plot",
]
