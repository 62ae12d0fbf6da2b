"""`pt2kit export TARGET -o model.pt2`."""

from __future__ import annotations

import argparse
import sys

from pt2kit.cli.common import add_input_arguments, add_json_argument, check_output, emit, emit_failure, parsed_inputs
from pt2kit.cli.verify_cmd import add_verify_options, run_verified


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="TARGET", help="path/to/file.py:NAME or package.module:NAME")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pt2", help="where to write the program")
    p.add_argument("--mode", choices=["auto", "non-strict", "strict"], default="auto",
                   help="capture mode; auto tries non-strict, then strict (default auto)")
    p.add_argument("--dynamic", metavar="SPEC", help="dynamic dims, e.g. x:0=batch[1,64] (see docs/dynamic-shapes.md)")
    p.add_argument("--sample", action="append", default=[], metavar="INPUTS",
                   help="one sample input set (a .safetensors file, or \"x=float32[2,16] y=...\"); give two or more and "
                        "the dims that differ become dynamic (instead of --dynamic)")
    p.add_argument("--no-repair", action="store_true",
                   help="do not apply torch's suggested fixes to --dynamic on a constraint violation")
    p.add_argument("--no-specialization-check", action="store_true",
                   help="skip the re-trace that finds shape branches export baked in")
    p.add_argument("--fix", action="store_true",
                   help="rewrite data-dependent if/else into torch.cond on a copy of the model, check it matches, "
                        "then export (your files are not changed; docs/autofix.md)")
    p.add_argument("--show-diff", action="store_true", help="print the --fix rewrite as a unified diff (implies --fix)")
    p.add_argument("--write-patch", metavar="FILE",
                   help="write the --fix rewrite as a patch to FILE; apply it with `patch -p0 < FILE` (implies --fix)")
    add_input_arguments(p)
    p.add_argument("--verify", action="store_true",
                   help="compare the program with the eager model (pt2kit verify); on failure OUT.pt2 is not written")
    add_verify_options(p)
    add_json_argument(p)


def run(args: argparse.Namespace) -> int:
    from pt2kit.errors import ExportFailed
    from pt2kit.artifact.manifest import declared_value_ranges
    from pt2kit.export.program import export_program
    from pt2kit.target.resolve import load_target

    check_output(args.output, "-o")
    check_output(args.write_patch, "--write-patch")
    inputs = parsed_inputs(args)
    samples = None
    if args.sample:  # the model's own example_args are not needed: the samples are the examples
        from pt2kit.shapes.inference import load_samples, parse_sample

        inputs = inputs or parse_sample(args.sample[0])
    target = load_target(args.target, inputs, seed=args.seed)
    if args.sample:
        samples = load_samples(target.module, args.sample, seed=args.seed)

    exported = []

    def export(output):
        result = export_program(
            target, output, mode=args.mode, dynamic=args.dynamic,
            check_specialization=not args.no_specialization_check,
            value_ranges=declared_value_ranges(inputs, target.parameter_names),
            repair=not args.no_repair, samples=samples,
            fix=args.fix or args.show_diff or bool(args.write_patch),
        )
        exported.append(result)
        return result

    try:
        if not args.verify:
            result = export(args.output)
            _show_fix(result.fix, args)
            emit(result, args.json)
            return 0
        code = run_verified(args, export, target, inputs)
        if code == 0:  # the rewrite is shown and saved only once the program it made was verified
            _show_fix(exported[-1].fix, args)
        elif args.write_patch:
            print(f"note: `{args.write_patch}` was not written: the program failed verification", file=sys.stderr)
        return code
    except ExportFailed as exc:
        fix = getattr(exc, "fix", None)
        # a refused --fix already says what blocks it and what to do by hand; otherwise diagnose
        # reports every blocker with its line and fix, not only the first
        diagnosis = None if fix is not None else _diagnose_quietly(target, args)
        emit_failure({"ok": False, "error": str(exc), "capture": exc.capture.to_json() if exc.capture else None,
                      "diagnosis": diagnosis.to_json() if diagnosis else None, "fix": fix.to_json() if fix else None},
                     args.json)
        if diagnosis is not None and not args.json:
            print(diagnosis)
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _show_fix(fix, args) -> None:
    """Write and print the `--fix` rewrite (only called once the program exported, and passed `--verify` if asked)."""
    if fix is None:
        return
    from pt2kit.rewrite.fix import write_patch

    if args.write_patch:
        write_patch(fix, args.write_patch)
    if args.show_diff and not args.json:
        print(fix.diff or "# --fix changed nothing: the model exports as written", end="" if fix.diff else "\n")


def _diagnose_quietly(target, args):
    """The diagnosis of a failed export, or None if diagnosing itself fails (the export error still stands)."""
    from pt2kit.diagnose import diagnose_model

    try:
        return diagnose_model(target, args.dynamic, mode=args.mode)
    except Exception as exc:  # never let the report hide the original failure
        print(f"note: diagnose could not run ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None
