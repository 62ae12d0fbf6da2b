"""Timing and memory probes: one call, measured the same way whatever runs inside it.

A `Timer` times one call: on CPU with `time.perf_counter_ns`, on CUDA with a pair of CUDA
events recorded around the call, the device synchronized before (so no earlier work is
counted) and after (so the end event has happened). The same loop times an empty call,
which is the harness's own overhead.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
import torch

Call = Callable[[], Any]


class Timer:
    """Times one call in milliseconds on `device` ("cpu" or "cuda[:N]")."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def time_ms(self, call: Call) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            self._start.record()
            out = call()
            self._end.record()
            self._end.synchronize()
            del out
            return self._start.elapsed_time(self._end)
        start = time.perf_counter_ns()
        out = call()
        elapsed = time.perf_counter_ns() - start
        del out
        return elapsed / 1e6

    def wall_s(self, call: Call) -> float:
        """Wall-clock seconds of one call to completion (for cold starts and builds)."""
        self.sync()
        start = time.perf_counter()
        out = call()
        self.sync()
        del out
        return time.perf_counter() - start


def interleaved(timer: Timer, calls: dict[str, Call], rounds: int) -> dict[str, list[float]]:
    """Time every call once per round, round after round, starting each round one further along.

    Round-robin means drift of the machine (clock, other load, thermal) touches every call alike;
    the rotating start means no call always runs right after the same other one.
    """
    names = list(calls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            samples[name].append(timer.time_ms(calls[name]))
    return samples


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), by `numpy.percentile` (linear interpolation between order statistics);
    NaN for no values."""
    if not values:
        return math.nan
    return float(np.percentile(values, q))


class MemoryProbe:
    """Memory one call adds above what is in use before it; None where it cannot be measured.

    CUDA: the caching allocator's peak (`max_memory_allocated`) minus `memory_allocated` before.
    CPU (Linux): VmHWM after the call minus VmRSS before it, the high-water mark reset first by
    writing `5` to `/proc/self/clear_refs`, and freed heap handed back to the OS (glibc `malloc_trim`)
    so the call must touch its pages anew. tracemalloc would miss torch's C++ allocations.
    """

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.available = self.cuda or _reset_hwm()

    def measure(self, call: Call) -> int | None:
        if self.cuda:
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            out = call()
            torch.cuda.synchronize()
            del out
            return max(0, torch.cuda.max_memory_allocated() - before)
        _trim_heap()
        if not self.available or not _reset_hwm():
            return None
        before = _status_kib("VmRSS")
        out = call()
        peak = _status_kib("VmHWM")
        del out
        if before is None or peak is None:
            return None
        return max(0, peak - before) * 1024


def _trim_heap() -> None:
    """Return free heap pages to the OS (glibc only; elsewhere a no-op), so reused memory shows in the next peak."""
    global _libc
    if _libc is None:
        try:
            import ctypes

            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc.malloc_trim(0)


_libc = None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
