"""Record pt2kit bench on this CPU: a small CNN, a small BERT and an MLP, every mode.

    python benchmarks/cpu/bench_cpu.py                # writes benchmarks/cpu/bench_cpu.md
    python benchmarks/cpu/bench_cpu.py --iters 10     # quicker, noisier

Uses one CPU thread for torch and onnxruntime alike: on a small shared machine that is the
setting whose figures repeat; set --threads to compare at another.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_models, common

import pt2kit  # noqa: E402
from bench_models import cnn, markdown_table, mlp, small_bert  # noqa: E402

CASES = [
    ("Small CNN (3x32x32 images)", cnn, [1, 8, 32]),
    ("Small BERT (2 layers, width 128, 64 tokens)", small_bert, [1, 8]),
    ("MLP (256-512-512-10)", mlp, [1, 32, 256]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    args = parser.parse_args()
    sections = []
    machine = None
    for title, make, sizes in CASES:
        start = time.perf_counter()
        report = pt2kit.bench(make(), batch_sizes=sizes, warmup=args.warmup, iters=args.iters, threads=args.threads)
        machine = report.machine
        print(report, f"\n({time.perf_counter() - start:.0f}s)\n", flush=True)
        sections.append(f"## {title}\n\n{markdown_table(report)}\n")
    header = (
        "# pt2kit bench on CPU\n\n"
        f"Recorded by `python benchmarks/cpu/bench_cpu.py --iters {args.iters} --warmup {args.warmup} --threads {args.threads}` "
        f"on {machine}.\n\n"
        "Every mode of a model ran in one process, interleaved round-robin; see docs/bench.md for what each figure means. "
        "The machine is small and shared (2 cores, other jobs running), so p90/p99 carry other processes' noise; "
        "compare p50s.\n"
    )
    Path(args.out).write_text(header + "\n" + "\n".join(sections))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
