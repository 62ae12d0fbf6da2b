"""`pt2kit tune --device cuda` on the issue's GPU goals, and the default artifact against plain AOTI.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libstdc++.so.6 python3 benchmarks/tune/tune_gpu.py --out tune_gpu.md

For each model (bf16, random weights): `pt2kit.tune_model(device="cuda", dtypes="bf16")` builds the candidates
(recipes from `--recipes`; channels_last too for ResNet-50; each package also loaded with CUDA graph replay),
verifies each against float32 eager (TF32 off) within `--atol/--rtol`, and times the survivors interleaved with
CUDA events. Then one more interleaved timing of the same default package through plain `aoti_load_package`,
through `pt2kit.load`, and the tuned artifact through `pt2kit.load` (its manifest's load options).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_models, common

import torch  # noqa: E402

import pt2kit  # noqa: E402
from bench_models import bert_base, resnet50  # noqa: E402
from common import utc_now  # noqa: E402
from pt2kit.benchmark.timing import Timer, interleaved, percentile  # noqa: E402
from pt2kit.tune import tune_model  # noqa: E402

GOALS = {"ResNet-50 b32": 1.0, "BERT-base b16x128": 1.4, "BERT-base b1x128": 0.6}
CASES = [("BERT-base b1x128", lambda: bert_base(1, 128)), ("BERT-base b16x128", lambda: bert_base(16, 128)),
         ("ResNet-50 b32", lambda: resnet50(32))]


def side_by_side(default_pkg: Path, tuned: Path, inputs: tuple, iters: int) -> dict[str, float]:
    import torch._inductor

    raw = torch._inductor.aoti_load_package(str(default_pkg))
    plain = pt2kit.load(default_pkg, cuda_graphs=False)
    best = pt2kit.load(tuned)
    calls = {"plain AOTI (aoti_load_package)": lambda: raw(*inputs), "default artifact (pt2kit.load)": lambda: plain(*inputs),
             "tuned artifact (pt2kit.load)": lambda: best(*inputs)}
    timer = Timer("cuda")
    with torch.no_grad():
        interleaved(timer, calls, 10)
        samples = interleaved(timer, calls, iters)
    return {k: percentile(v, 50) for k, v in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--atol", type=float, default=0.1)
    parser.add_argument("--rtol", type=float, default=0.1)
    parser.add_argument("--recipes", default="default")
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--only", help="run only cases whose title contains this")
    parser.add_argument("--workdir", default="/tmp/pt2kit-tune-gpu")
    parser.add_argument("--out", default=str(Path(__file__).with_name("tune_gpu.md")))
    args = parser.parse_args()
    sections, summary = [], []
    for title, make in CASES:
        if args.only and args.only not in title:
            continue
        work = Path(args.workdir) / title.replace(" ", "_")
        work.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        target = make()
        report = tune_model(target, work / "tuned.pt2", device="cuda", dtypes="bf16", recipes=args.recipes, atol=args.atol,
                            rtol=args.rtol, samples=1, warmup=10, iters=args.iters, workdir=work)
        verified = True
        if report.chosen is None:  # keep the figures, say plainly they are unverified
            verified = False
            report = tune_model(target, work / "tuned.pt2", device="cuda", dtypes="bf16", recipes=args.recipes, atol=1e9, rtol=1e9,
                                samples=1, warmup=10, iters=args.iters, workdir=work)
        print(report, flush=True)
        lines = [f"## {title}", "", f"`tune_model` in {time.perf_counter() - start:.0f}s"
                 + ("" if verified else " (NO candidate passed the tolerance: the figures below are timing only)") + ":", "",
                 "```", str(report), "```", ""]
        default_pkg = work / "default-bf16.aoti.pt2"
        if report.output and default_pkg.exists():
            # the packages take bf16 floating inputs (ids stay int64)
            inputs = tuple(t.to("cuda", torch.bfloat16) if t.is_floating_point() else t.to("cuda") for t in target.args)
            p50 = side_by_side(default_pkg, report.output, inputs, args.iters)
            lines += ["Interleaved, one process, CUDA events, p50 of %d calls:" % args.iters, "", "| way | p50 ms |", "| --- | ---: |"]
            lines += [f"| {k} | {v:.3f} |" for k, v in p50.items()]
            tuned_ms = p50["tuned artifact (pt2kit.load)"]
            goal = GOALS[title]
            verdict = "met" if tuned_ms <= goal else f"missed by {tuned_ms - goal:.2f} ms ({tuned_ms / goal - 1:.0%})"
            summary.append(f"| {title} | {p50['plain AOTI (aoti_load_package)']:.3f} | {p50['default artifact (pt2kit.load)']:.3f} | "
                           f"{tuned_ms:.3f} ({report.chosen}) | {goal} | {verdict} | "
                           f"{report.result(report.chosen).max_abs_err:.3g}{'' if verified else ' UNVERIFIED'} |")
            lines.append("")
        sections.append("\n".join(lines))
        _write(args, summary, sections)  # after each model: a run cut short keeps what it measured
    return 0


def _write(args, summary: list[str], sections: list[str]) -> None:
    head = (f"# pt2kit tune on the GPU\n\n{torch.cuda.get_device_name()}, torch {torch.__version__}, "
            f"{utc_now()}; `python3 benchmarks/tune/tune_gpu.py --atol {args.atol} "
            f"--rtol {args.rtol} --recipes {args.recipes} --iters {args.iters}`. Random weights, bf16 candidates verified against "
            "float32 eager (TF32 off) on the example and one random input.\n\n"
            "| model | plain AOTI ms | default artifact ms | tuned ms (candidate) | goal ms | goal | max abs err vs fp32 |\n"
            "| --- | ---: | ---: | ---: | ---: | --- | ---: |\n" + "\n".join(summary) + "\n")
    Path(args.out).write_text(head + "\n" + "\n".join(sections))
    print(head, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
