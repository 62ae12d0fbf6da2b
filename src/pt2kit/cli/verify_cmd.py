"""`pt2kit verify TARGET ARTIFACT`: compare the artifact's outputs with the eager model's.

TARGET is the Python model (`path/to/file.py:NAME`), or the `.pt2` program a package was compiled from: a user who
shipped only the program verifies the package against it with the program's saved example inputs (reading a
program runs no code).
"""

from __future__ import annotations

import argparse

from pt2kit.cli.common import add_input_arguments, add_json_argument, count, emit, parsed_inputs, tolerance


def add_verify_options(p: argparse.ArgumentParser) -> None:
    """`--samples`, `--atol`, `--rtol`, `--max-size`: shared by `verify` and `--verify` on export and compile."""
    p.add_argument("--samples", type=count(0), default=8, metavar="N",
                   help="random inputs besides the example; the first two are at every dynamic dim's min and max (default 8)")
    p.add_argument("--atol", type=tolerance, help="absolute tolerance for every numeric output (default: by dtype and device, docs/verify.md)")
    p.add_argument("--rtol", type=tolerance, help="relative tolerance for every numeric output (default: by dtype and device)")
    p.add_argument("--max-size", type=count(1), metavar="N", help="test no dynamic dim above N (default: its max, capped at 4096)")


def verify_options(args: argparse.Namespace, inputs, parameters: list[str]) -> dict:
    """The keyword arguments of `verify_outputs` from parsed flags."""
    from pt2kit.artifact.manifest import declared_value_ranges

    return {
        "samples": args.samples, "seed": args.seed, "atol": args.atol, "rtol": args.rtol, "max_size": args.max_size,
        "value_ranges": declared_value_ranges(inputs, parameters),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="TARGET",
                   help="the model the artifact was built from: path/to/file.py:NAME, or the .pt2 program a package was compiled from")
    p.add_argument("artifact", metavar="ARTIFACT",
                   help="a .pt2 program, an AOTInductor package, or a region archive (`pt2kit compile --partial`)")
    add_input_arguments(p)
    add_verify_options(p)
    add_json_argument(p)


def run(args: argparse.Namespace) -> int:
    from pt2kit.target.resolve import load_target
    from pt2kit.verify.outputs import verify_outputs

    inputs = parsed_inputs(args)
    if args.target.endswith(".pt2"):  # as `tune` and `compile` tell a program from `file.py:NAME`
        from pt2kit.errors import UsageError
        from pt2kit.verify.outputs import program_target

        if inputs:
            raise UsageError("`--input` shapes a Python target's example; a .pt2 program verifies with the example inputs it holds "
                             f"(drop `--input`, or pass the model: `pt2kit verify path/to/model.py:NAME {args.artifact}`)")
        target = program_target(args.target)
    else:
        target = load_target(args.target, inputs, seed=args.seed)
    report = verify_outputs(target, args.artifact, **verify_options(args, inputs, target.parameter_names))
    emit(report, args.json)
    return 0 if report.ok else 1


def run_verified(args: argparse.Namespace, write, target, inputs) -> int:
    """`--verify` on export and compile: `write(path)` builds the artifact at a temporary path, it is verified,
    and only an artifact that passed is moved to `args.output`. Prints the build result and the report."""
    import json
    import sys

    from pt2kit.verify.outputs import write_verified

    result, report = write_verified(args.output, write, target, **verify_options(args, inputs, target.parameter_names))
    if args.json:
        json.dump({**result.to_json(), "ok": report.ok, "verify": report.to_json()}, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(result)
        print(report)
    if report.ok:
        return 0
    print(f"error: {report.summary()}; `{args.output}` was not written (an earlier file there is left as it was)", file=sys.stderr)
    return 1
