"""`pt2kit export TARGET -o model.pt2`."""

from __future__ import annotations

import argparse
import sys

from pt2kit.cli.common import add_input_arguments, add_json_argument, emit, emit_failure, parsed_inputs


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="TARGET", help="path/to/file.py:NAME or package.module:NAME")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pt2", help="where to write the program")
    p.add_argument("--mode", choices=["auto", "non-strict", "strict"], default="auto",
                   help="capture mode; auto tries non-strict, then strict (default auto)")
    p.add_argument("--dynamic", metavar="SPEC", help="dynamic dims, e.g. x:0=batch[1,64] (see docs/dynamic-shapes.md)")
    p.add_argument("--no-specialization-check", action="store_true",
                   help="skip the re-trace that finds shape branches export baked in")
    add_input_arguments(p)
    add_json_argument(p)


def run(args: argparse.Namespace) -> int:
    from pt2kit.errors import ExportFailed
    from pt2kit.program import export_program
    from pt2kit.target import load_target

    target = load_target(args.target, parsed_inputs(args), seed=args.seed)
    try:
        result = export_program(
            target, args.output, mode=args.mode, dynamic=args.dynamic,
            check_specialization=not args.no_specialization_check,
        )
    except ExportFailed as exc:
        emit_failure({"ok": False, "error": str(exc), "capture": exc.capture.to_json() if exc.capture else None}, args.json)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    emit(result, args.json)
    return 0
