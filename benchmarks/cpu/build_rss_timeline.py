"""Where host memory goes while `pt2kit.compile_package` builds a package: an RSS timeline by phase.

    PYTHONPATH=src python benchmarks/cpu/build_rss_timeline.py MODEL.pt2 --out /tmp/pkg.aoti.pt2 [--dtype bf16]

A thread samples this process's RSS every 5 ms with the main thread's stack; each time the RSS passes the last
reported peak by `--step-mb`, it prints the RSS over the baseline (after imports) and the innermost frames of
pt2kit and torch code at that moment, so a reader sees which phase holds which copy of the weights. The last
line is the peak over base and its ratio to the program's weights.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def where(frame) -> str:
    """The innermost few frames inside torch or pt2kit, innermost last."""
    stack = [f for f in traceback.extract_stack(frame) if "/torch/" in f.filename or "/pt2kit/" in f.filename]
    return " < ".join(f"{os.path.basename(f.filename)}:{f.name}" for f in reversed(stack[-4:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("program")
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default=None)
    p.add_argument("--external-weights", default="auto")
    p.add_argument("--step-mb", type=int, default=100)
    p.add_argument("--setting", action="append", default=[], help="an extra Inductor setting, NAME=VALUE (VALUE as JSON)")
    a = p.parse_args()
    import torch._inductor  # noqa: F401  (imports before the baseline)

    import pt2kit
    import pt2kit.compile.build  # noqa: F401

    base, main_id = rss(), threading.get_ident()
    peak, reported, stop, t0 = [0], [0], threading.Event(), time.perf_counter()

    def sample() -> None:
        while not stop.is_set():
            now = rss() - base
            if now > peak[0]:
                peak[0] = now
            if now > reported[0] + a.step_mb * 1e6:
                reported[0] = now
                frame = sys._current_frames().get(main_id)
                print(f"{time.perf_counter() - t0:7.1f}s {now / 1e9:6.2f} GB  {where(frame) if frame else '?'}", flush=True)
            stop.wait(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    extra = {name: json.loads(value) for name, value in (item.split("=", 1) for item in a.setting)}
    result = pt2kit.compile_package(a.program, a.out, device="cpu", dtype=a.dtype, use_cache=False,
                                    external_weights=a.external_weights, inductor_configs=extra)
    stop.set()
    thread.join()
    import resource

    high = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base  # the kernel's high-water mark (Linux: KiB)
    print(f"getrusage high-water mark over base {high / 1e9:.2f} GB = {high / max(result.weights_bytes, 1):.2f}x")
    print(f"peak over base {peak[0] / 1e9:.2f} GB = {peak[0] / max(result.weights_bytes, 1):.2f}x the weights "
          f"({result.weights_bytes / 1e9:.2f} GB); build {result.seconds:.1f} s; external={result.external_weights}")


if __name__ == "__main__":
    main()
