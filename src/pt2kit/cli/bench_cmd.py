"""`pt2kit bench TARGET`: every mode side by side (see docs/bench.md)."""

from __future__ import annotations

import argparse

from pt2kit.cli.common import add_input_arguments, add_json_argument, emit


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="TARGET", help="path/to/file.py:NAME or package.module:NAME")
    add_input_arguments(p)
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N) (default cpu)")
    p.add_argument("--dtype", metavar="DTYPE", help="cast the model and floating inputs, e.g. bfloat16 (default: as they are)")
    p.add_argument("--modes", metavar="LIST", default="eager,compile,export,aoti,onnxruntime",
                   help="comma-separated modes from eager, compile, export, aoti, aoti-raw, onnxruntime (default "
                        "eager,compile,export,aoti,onnxruntime); aoti and aoti-raw time one package, with and without "
                        "pt2kit's input checks, so naming either times both")
    p.add_argument("--batch-sizes", metavar="LIST", help="e.g. 1,8,32: resize dim 0 of the batched inputs (default: as given)")
    p.add_argument("--warmup", type=int, default=10, metavar="N", help="untimed calls per mode and batch size (default 10)")
    p.add_argument("--iters", type=int, default=50, metavar="N", help="timed calls per mode and batch size (default 50)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch and onnxruntime (default: their own)")
    p.add_argument("--artifact", metavar="PATH", help="also time this existing package (e.g. from `pt2kit tune`) as mode `artifact`")
    p.add_argument("--cuda-graphs", action="store_true", help="load the aoti package (and --artifact) with CUDA graph replay")
    p.add_argument("--keep", metavar="DIR", help="keep the built artifacts in DIR (default: a temporary folder)")
    p.add_argument("--plot", metavar="FILE.png", help="also write a PNG chart (needs matplotlib)")
    add_json_argument(p)


def run(args: argparse.Namespace) -> int:
    from pt2kit.benchmark import bench, write_plot
    from pt2kit.benchmark.plot import check_plot_path
    from pt2kit.cli.common import parsed_inputs

    if args.plot:
        check_plot_path(args.plot)
    report = bench(
        args.target, inputs=parsed_inputs(args), device=args.device, modes=args.modes, batch_sizes=args.batch_sizes,
        dtype=args.dtype, warmup=args.warmup, iters=args.iters, seed=args.seed, workdir=args.keep,
        threads=args.threads, artifact=args.artifact, cuda_graphs=args.cuda_graphs,
    )
    if args.plot:
        write_plot(report, args.plot)
    emit(report, args.json)
    return 0 if report.ok else 1
