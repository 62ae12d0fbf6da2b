"""`pt2kit diagnose TARGET`: every export blocker in one run, each with the user's line and the fix."""

from __future__ import annotations

import argparse

from pt2kit.cli.common import add_input_arguments, add_json_argument, emit, parsed_inputs


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="TARGET", help="path/to/file.py:NAME or package.module:NAME")
    p.add_argument("--dynamic", metavar="SPEC", help="dynamic dims, e.g. x:0=batch[1,64] (see docs/dynamic-shapes.md)")
    p.add_argument("--mode", choices=["auto", "non-strict", "strict"], default="auto",
                   help="capture mode the model must export in; auto: either (default auto)")
    p.add_argument("--no-compile-check", action="store_true",
                   help="skip asking torch._dynamo.explain how torch.compile would run the model")
    add_input_arguments(p)
    add_json_argument(p)
    p.epilog = "Exit codes: 0 the model exports (silent specializations are still listed), 1 blockers remain, 2 bad usage."


def run(args: argparse.Namespace) -> int:
    from pt2kit.diagnose import diagnose_model
    from pt2kit.target.resolve import load_target

    target = load_target(args.target, parsed_inputs(args), seed=args.seed)
    result = diagnose_model(target, args.dynamic, mode=args.mode, check_compile=not args.no_compile_check)
    emit(result, args.json)
    return 0 if result.exports else 1
