"""`pt2kit migrate MODEL.pt -o OUT.pt2`: a TorchScript archive -> a verified `.pt2` program."""

from __future__ import annotations

import argparse
import sys

from pt2kit.cli.common import add_input_arguments, add_json_argument, emit, parsed_inputs
from pt2kit.cli.verify_cmd import add_verify_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("archive", metavar="MODEL.pt", help="a TorchScript archive written by torch.jit.save (no source needed)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.pt2", help="where to write the program")
    p.add_argument("--dynamic", metavar="SPEC", help="dynamic dims over forward's parameters, e.g. x:0=batch[1,64]")
    p.add_argument("--strategy", choices=["auto", "ts2ep", "specialize", "non-strict"], default="auto",
                   help="conversion strategy; auto tries ts2ep, specialize, non-strict in turn (default auto)")
    p.add_argument("--method", default="forward", metavar="NAME",
                   help="the scripted method to migrate (default forward); run once per method you need")
    add_input_arguments(p)
    p.add_argument("--verify", action="store_true",
                   help="also check seeded random inputs across the dynamic range and inputs that take each side of every "
                        "scripted `if`; OUT is written only if all match (without it, the example is checked)")
    add_verify_options(p)
    add_json_argument(p)


def run(args: argparse.Namespace) -> int:
    from pt2kit.migrate import migrate_model

    result = migrate_model(
        args.archive, args.output, inputs=parsed_inputs(args), seed=args.seed, dynamic=args.dynamic,
        strategy=args.strategy, method=args.method, verify=args.verify, samples=args.samples, atol=args.atol, rtol=args.rtol,
        max_size=args.max_size,
    )
    emit(result, args.json)
    if result.ok:
        return 0
    print(f"error: `{args.archive}` could not be migrated: {len(result.blockers)} blocker(s), see above; "
          f"`{args.output}` was not written", file=sys.stderr)
    return 1
