"""`pt2kit compile TARGET --partial -o OUT.pt2 [--min-share F]`: the region archive (pt2kit.partial), for compile_cmd."""

from __future__ import annotations

import argparse

from pt2kit.cli.common import check_output, emit, parsed_inputs


def add_partial_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--partial", action="store_true",
                   help="the model does not export whole: compile the submodules that do into a region archive (docs/partial.md)")
    p.add_argument("--min-share", type=float, default=0.02, metavar="F",
                   help="with --partial: a submodule taking less than this share of the eager time stays eager (default 0.02)")
    p.add_argument("--sample", action="append", default=[], metavar="INPUTS",
                   help="with --partial: another input set (\"x=float32[2,16]\" or a .safetensors file); a block's dims that "
                        "take other sizes become dynamic in its region")


def run_partial(args: argparse.Namespace) -> int:
    """Exit 0 with the archive written, 1 when no submodule could be compiled (the report says why)."""
    from pt2kit.errors import UsageError
    from pt2kit.partial.build import compile_regions
    from pt2kit.target.resolve import load_target

    if args.source.endswith(".pt2") or ":" not in args.source:
        raise UsageError(f"--partial needs the model's source, not `{args.source}`: pass TARGET as path/to/file.py:NAME")
    if args.dtype or args.dynamic:
        raise UsageError("--partial takes neither --dtype nor --dynamic: each region's dims come from the shapes it was called with")
    check_output(args.output, "-o")  # before the model is traced and its regions built
    inputs = parsed_inputs(args)
    target = load_target(args.source, inputs, seed=args.seed)

    samples = None
    if args.sample:
        from pt2kit.shapes.inference import load_samples

        samples = load_samples(target.module, args.sample, seed=args.seed)

    def build(output):
        return compile_regions(target, output, device=args.device, preset=args.preset, min_share=args.min_share,
                               samples=samples, use_cache=not args.no_cache)

    if args.verify:
        from pt2kit.cli.verify_cmd import run_verified
        from pt2kit.errors import ExportFailed

        def build_or_fail(output):
            result = build(output)
            if not result.ok:  # nothing written: nothing to verify
                raise ExportFailed(str(result))
            return result

        return run_verified(args, build_or_fail, target, inputs)
    result = build(args.output)
    emit(result, args.json)
    return 0 if result.ok else 1
