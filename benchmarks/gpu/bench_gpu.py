"""Record pt2kit bench on a GPU: ResNet-50 (batch 32) and BERT-base (16 x 128 tokens), float32 and bfloat16.

    python benchmarks/gpu/bench_gpu.py --out-dir DIR     # every case, each in its own process; writes DIR/bench_gpu.md
    python benchmarks/gpu/bench_gpu.py --one resnet50:float32 --json DIR/x.json   # one case

Modes: eager, torch.compile, export (pt2kit.load of the .pt2), aoti (pt2kit.load of the package) and
aoti-raw (the same package through torch._inductor.aoti_load_package). Each case also times the eager
model with a plain loop, no pt2kit (median of 50 calls, CUDA events), the way ../shared/GPU.md's
baseline was taken, so the harness can be checked against it on the same card.

Loading AOTInductor packages on that machine needs LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libstdc++.so.6.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_models, common

from common import median  # noqa: E402

CASES = {"resnet50": ("ResNet-50 (32, 3x224x224)", 32), "bert_base": ("BERT-base (16 x 128 tokens)", 16)}
DTYPES = ("float32", "bfloat16")
# ../shared/GPU.md, 2026-11-26, one H200: p50 ms of eager, torch.compile, export + AOTI, no pt2kit
BASELINE = {
    ("resnet50", "float32"): (5.29, 3.36, 2.79), ("bert_base", "float32"): (10.60, 10.55, 10.00),
    ("resnet50", "bfloat16"): (6.10, 3.90, 1.89), ("bert_base", "bfloat16"): (6.17, 3.11, 2.17),
}


def plain_eager_ms(target, dtype: str, runs: int = 50) -> float:
    """Median of `runs` eager calls timed with CUDA events, no pt2kit: GPU.md's method."""
    import torch

    cast = getattr(torch, dtype)
    module = target.module.to("cuda", cast)
    args = [a.to("cuda") if not a.is_floating_point() else a.to("cuda", cast) for a in target.args]
    times = []
    with torch.no_grad():
        for _ in range(10):
            module(*args)
        for _ in range(runs):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            module(*args)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    return median(times)


def run_one(case: str, dtype: str, json_path: Path, iters: int, warmup: int, run_id: str = "") -> None:
    import bench_models

    import pt2kit

    _, batch = CASES[case]
    plain = plain_eager_ms(getattr(bench_models, case)(batch), dtype)
    report = pt2kit.bench(getattr(bench_models, case)(batch), device="cuda", dtype=dtype,
                          modes="eager,compile,export,aoti", warmup=warmup, iters=iters)
    print(report, flush=True)
    doc = report.to_json()
    doc["plain_eager_ms"] = plain
    doc["markdown"] = bench_models.markdown_table(report)
    doc["run_id"] = run_id
    tmp = json_path.with_name(json_path.name + ".tmp")  # whole or absent: a killed case leaves no JSON to misread
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, json_path)


def fresh_result(json_path: Path, code, run_id: str) -> bool:
    """The case's JSON is this run's: the child exited 0 and wrote the JSON with this run's id (never an old file)."""
    if code != 0 or not json_path.is_file():
        return False
    try:
        return json.loads(json_path.read_text()).get("run_id") == run_id
    except (OSError, ValueError):
        return False


def write_markdown(out_dir: Path, done: list[tuple[str, str]]) -> Path:
    docs = {key: json.loads((out_dir / f"{key[0]}_{key[1]}.json").read_text()) for key in done}
    machine = next(iter(docs.values()))["machine"] if docs else {}
    lines = ["# pt2kit bench on GPU", "",
             f"Recorded by `python benchmarks/gpu/bench_gpu.py` on {machine.get('gpu')} ({machine.get('cpu')}, "
             f"{machine.get('cpu_count')} cores), Python {machine.get('python')}, torch {machine.get('torch')}, "
             f"{machine.get('date')}. Random weights; models built without torchvision (benchmarks/bench_models.py).", "",
             "## p50 latency (ms) against ../shared/GPU.md's plain baseline", "",
             "| model | dtype | plain eager (this run) | eager | compile | export | aoti | aoti-raw | GPU.md eager / compile / AOTI |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for (case, dtype), doc in docs.items():
        def p50(mode: str) -> str:
            batches = doc["modes"].get(mode, {}).get("batches", {})
            return f"{next(iter(batches.values()))['p50_ms']:.2f}" if batches else "-"
        base = " / ".join(f"{v:.2f}" for v in BASELINE[(case, dtype)])
        lines.append(f"| {CASES[case][0]} | {dtype} | {doc['plain_eager_ms']:.2f} | {p50('eager')} | {p50('compile')} | "
                     f"{p50('export')} | {p50('aoti')} | {p50('aoti-raw')} | {base} |")
    for (case, dtype), doc in docs.items():
        lines += ["", f"## {CASES[case][0]}, {dtype}", "", doc["markdown"]]
    missing = [f"{c}:{d}" for c in CASES for d in DTYPES if (c, d) not in done]
    if missing:
        lines += ["", f"Not recorded (out of time or failed; see the log): {', '.join(missing)}"]
    path = out_dir / "bench_gpu.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", metavar="CASE:DTYPE")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/gpu"))
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=540, help="start no case after this many seconds")
    parser.add_argument("--run-id", default="", help=argparse.SUPPRESS)  # set by the parent for its children
    args = parser.parse_args()
    if args.one:
        case, dtype = args.one.split(":")
        run_one(case, dtype, args.json, args.iters, args.warmup, args.run_id)
        return 0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    start, done = time.monotonic(), []
    run_id = f"{os.getpid()}-{time.time_ns()}"
    for dtype in DTYPES:
        for case in CASES:
            left = args.budget_s - (time.monotonic() - start)
            if left < 60:
                print(f"skip {case}:{dtype}: {left:.0f}s of budget left", flush=True)
                continue
            json_path = args.out_dir / f"{case}_{dtype}.json"
            json_path.unlink(missing_ok=True)  # an earlier run's JSON must never pass for this run's
            cmd = [sys.executable, __file__, "--one", f"{case}:{dtype}", "--json", str(json_path),
                   "--iters", str(args.iters), "--warmup", str(args.warmup), "--run-id", run_id]
            print(f"== {case} {dtype} ({left:.0f}s left)", flush=True)
            try:
                code = subprocess.run(cmd, timeout=left, env=os.environ).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
            print(f"== {case} {dtype}: exit {code}, {time.monotonic() - start:.0f}s elapsed", flush=True)
            if fresh_result(json_path, code, run_id):
                done.append((case, dtype))
    print(write_markdown(args.out_dir, done).read_text())
    return 0 if len(done) == len(CASES) * len(DTYPES) else 1


if __name__ == "__main__":
    raise SystemExit(main())
