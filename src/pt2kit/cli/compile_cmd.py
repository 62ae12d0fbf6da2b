"""`pt2kit compile TARGET|model.pt2 -o model.aoti.pt2 --device cpu|cuda [--preset NAME] [--dtype bf16] [--quantize SCHEME]
[--external-weights auto|on|tensors|off]`."""

from __future__ import annotations

import argparse

from pt2kit.cli.common import add_input_arguments, add_json_argument, check_output, emit, parsed_inputs
from pt2kit.cli.compile_partial import add_partial_arguments, run_partial
from pt2kit.cli.verify_cmd import add_verify_options, run_verified


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="TARGET|MODEL.pt2", help="a .pt2 program, or path/to/file.py:NAME (exported first)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.aoti.pt2", help="where to write the package (must end in .pt2)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device to compile for (default cpu)")
    p.add_argument("--preset", default="default", metavar="NAME",
                   help="Inductor settings: default, max-autotune, cpu-freeze (see docs/compile.md)")
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"],
                   help="compute in this dtype (weights cast; inputs cast on entry, outputs back: the model's dtypes outside)")
    p.add_argument("--quantize", metavar="SCHEME",
                   help="quantize linear layers with torchao: int8-dynamic, int8-weight-only (cpu, cuda); int8-static (cpu); fp8-dynamic, "
                        "int4-weight-only (cuda); needs pip install 'pt2kit[quant]' (docs/compile.md)")
    p.add_argument("--low-precision-io", action="store_true",
                   help="with --dtype: the package takes and returns the lower-precision tensors (no casts inside)")
    p.add_argument("--dynamic", metavar="SPEC", help="dynamic dims when exporting a TARGET, e.g. x:0=batch[1,64]")
    p.add_argument("--no-cache", action="store_true", help="build even if an identical build is in the cache")
    p.add_argument("--external-weights", choices=["auto", "on", "tensors", "off"], default="auto",
                   help="keep the weights outside the .so: `on` in a blob beside it (auto: from PT2KIT_EXTERNAL_WEIGHTS_BYTES, "
                        "default 1 GB), `tensors` one file per tensor (least build memory, fastest load; see docs/compile.md)")
    p.add_argument("--release-eager", action="store_true",
                   help="with a TARGET and --device cuda: free the eager model's host weights once the program is on the GPU")
    add_input_arguments(p)
    p.add_argument("--verify", action="store_true",
                   help="compare the package with TARGET's eager model (or with the .pt2 program); on failure OUT is not written")
    add_verify_options(p)
    add_partial_arguments(p)
    add_json_argument(p)


def run(args: argparse.Namespace) -> int:
    if args.partial:
        return run_partial(args)
    from pt2kit.compile import compile_package

    if args.verify and args.release_eager:
        from pt2kit.errors import UsageError

        raise UsageError("`--release-eager` frees the eager model that `--verify` compares against; drop one of them")
    check_output(args.output, "-o")
    inputs = parsed_inputs(args)  # malformed inputs fail before any work, even where a .pt2 does not use them
    source = args.source
    if args.dynamic and (source.endswith(".pt2") or ":" not in source):
        from pt2kit.errors import UsageError

        raise UsageError(f"`--dynamic` shapes a TARGET as it is exported, and `{source}` is a program exported already (its dims "
                         f"are fixed in it); export again with them: `pt2kit export TARGET -o {source} --dynamic {args.dynamic}`")
    if ":" in source and not source.endswith(".pt2"):
        from pt2kit.target.resolve import load_target

        source = load_target(source, inputs, seed=args.seed)
        source.dynamic = args.dynamic or source.dynamic

    def build(output):
        return compile_package(source, output, device=args.device, preset=args.preset, dtype=args.dtype,
                               use_cache=not args.no_cache, low_precision_io=args.low_precision_io, quantize=args.quantize,
                               external_weights=args.external_weights, release_eager=args.release_eager)

    if args.verify:
        from pt2kit.verify.outputs import program_target

        reference = program_target(source) if isinstance(source, str) else source
        return run_verified(args, build, reference, inputs)
    emit(build(args.output), args.json)
    return 0
