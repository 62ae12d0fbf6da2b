"""`pt2kit tune TARGET|PROGRAM.pt2 -o OUT.pt2 --device cpu|cuda`: the fastest build within an accuracy budget (docs/tune.md)."""

from __future__ import annotations

import argparse

from pt2kit.cli.common import add_input_arguments, add_json_argument, emit, parsed_inputs, tolerance


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="TARGET|PROGRAM.pt2", help="path/to/file.py:NAME (exported first) or a .pt2 program")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pt2", help="where to write the chosen package")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device to tune for (default cpu)")
    p.add_argument("--batch-size", type=int, metavar="N", help="resize the batch (dim 0) to N before exporting and timing")
    p.add_argument("--atol", type=tolerance, default=1e-3, metavar="A", help="absolute tolerance against float32 eager (default 1e-3)")
    p.add_argument("--rtol", type=tolerance, default=1e-3, metavar="R", help="relative tolerance against float32 eager (default 1e-3)")
    p.add_argument("--dtypes", metavar="LIST", help="dtypes to try, e.g. fp32,bf16,fp16 (default: all the device computes natively)")
    p.add_argument("--recipes", metavar="LIST",
                   help="Inductor recipes to try: default, cpu-freeze, cpu-gemm, coordinate-descent, max-autotune (default: all for the device)")
    p.add_argument("--threads", metavar="LIST", help="CPU thread counts to try, e.g. 1,2 (default: this process's count)")
    p.add_argument("--time-budget", type=float, default=900.0, metavar="S", help="no new build starts after S seconds (default 900)")
    p.add_argument("--samples", type=int, default=2, metavar="N", help="random verification inputs besides the example (default 2)")
    p.add_argument("--iters", type=int, default=30, metavar="N", help="timed calls per candidate (default 30)")
    p.add_argument("--low-precision-io", action="store_true",
                   help="a bf16/fp16 candidate takes and returns its own dtype (default: the model's dtypes, cast inside)")
    p.add_argument("--keep", metavar="DIR", help="keep every candidate's package in DIR (default: a temporary folder)")
    p.add_argument("--no-cache", action="store_true", help="build every candidate even if an identical build is cached")
    add_input_arguments(p)
    add_json_argument(p)


def run(args: argparse.Namespace) -> int:
    from pt2kit.tune import tune_model

    report = tune_model(
        args.source, args.output, device=args.device, batch_size=args.batch_size, atol=args.atol, rtol=args.rtol,
        dtypes=args.dtypes, recipes=args.recipes, threads=args.threads, time_budget=args.time_budget, samples=args.samples,
        iters=args.iters, inputs=parsed_inputs(args), seed=args.seed, use_cache=not args.no_cache, workdir=args.keep,
        low_precision_io=args.low_precision_io,
    )
    emit(report, args.json)
    return 0 if report.ok else 1
