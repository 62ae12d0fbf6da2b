"""A PNG chart of a `BenchReport`: latency per mode and batch size, and throughput.

matplotlib is an optional dependency (the `bench` extra), imported only here.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from pt2kit.benchmark.report import BenchMode, BenchReport
from pt2kit.errors import UsageError
from pt2kit.artifact.package import atomic_path, check_output_path


def check_plot_path(path: str | os.PathLike) -> Path:
    """Fail before a long benchmark, not after it: the path must be a `.png` and matplotlib importable.

    Raises:
        UsageError: matplotlib is not installed, or `path` does not end in `.png`.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UsageError(f"`--plot {path}`: the chart is a PNG; give a path ending in `.png`")
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError("`--plot` needs matplotlib: `pip install matplotlib` (or `pip install 'pt2kit[bench]'`)")
    return check_output_path(path, "--plot")


def write_plot(report: BenchReport, path: str | os.PathLike) -> Path:
    """Draw the report as a PNG at `path` (written atomically): p50 bars with p90/p99 marks, and items/s.

    Args:
        report: from `pt2kit.bench`.
        path: a `.png` file.

    Returns:
        The path written.

    Raises:
        UsageError: matplotlib is not installed, or `path` does not end in `.png`.

    Example:
        >>> write_plot(pt2kit.bench("model.py:model"), "bench.png")
    """
    path = check_plot_path(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m in BenchMode if any(r.mode is m for r in report.rows)]
    sizes = list(report.batch_sizes)
    fig, (lat_ax, thr_ax) = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(sizes) + 6), 4.5))
    width = 0.8 / max(1, len(modes))
    for i, mode in enumerate(modes):
        xs, p50, p90, p99, thr = [], [], [], [], []
        for j, bs in enumerate(sizes):
            row = report.row(mode, bs)
            if row is None:
                continue
            xs.append(j + (i - (len(modes) - 1) / 2) * width)
            p50.append(row.p50_ms), p90.append(row.p90_ms), p99.append(row.p99_ms), thr.append(row.throughput)
        bars = lat_ax.bar(xs, p50, width, label=mode.value)
        color = bars.patches[0].get_facecolor() if bars.patches else None
        lat_ax.scatter(xs, p90, marker="_", s=120, color="black", zorder=3)
        lat_ax.scatter(xs, p99, marker="x", s=20, color="black", zorder=3)
        thr_ax.bar(xs, thr, width, label=mode.value, color=color)
    for ax, title in ((lat_ax, "latency ms (bar p50, - p90, x p99)"), (thr_ax, "throughput items/s")):
        ax.set_xticks(range(len(sizes)), [f"batch {bs}" for bs in sizes])
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    lat_ax.legend(fontsize=8)
    fig.suptitle(f"{Path(report.target.split(':')[0]).name}:{report.target.rpartition(':')[2]} on {report.device} "
                 f"({report.dtype}); {report.machine.gpu or report.machine.cpu}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
