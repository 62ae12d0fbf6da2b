"""Arguments and output shared by several subcommands."""

from __future__ import annotations

import argparse
import json
import sys

INPUT_HELP = (
    "an input: NAME=DTYPE[SHAPE] (random), NAME=int64[2,128]@0..30000 (range), NAME=@file (.pt/.npy/.safetensors), "
    "@file.safetensors (all by key), NAME=3 (scalar); repeat for several"
)


def count(minimum: int):
    """An argparse type: an integer of at least `minimum` (`--samples`, `-j`), checked before any work."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{text}` is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"`{text}` is below {minimum}")
        return value

    parse.__name__ = "integer"
    return parse


def tolerance(text: str) -> float:
    """An argparse type: a finite number >= 0 (`--atol`, `--rtol`)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"`{text}` is not a finite number >= 0")
    return value


def check_output(path: str | None, flag: str) -> None:
    """Fail before any work when an output file cannot be written (a folder, a missing or read-only folder)."""
    if path is not None:
        from pt2kit.artifact.package import check_output_path

        check_output_path(path, flag)


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", "-i", action="append", default=[], metavar="SPEC", help=INPUT_HELP)
    parser.add_argument("--seed", type=int, default=0, help="seed for random inputs (default 0)")


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print exactly one JSON document on stdout")


def parsed_inputs(args: argparse.Namespace):
    from pt2kit.target.inputs import parse_input

    return [parse_input(text) for text in args.input]


def emit(result, as_json: bool) -> None:
    """Print a result: its `to_json()` as one document, or its `__str__`."""
    if as_json:
        json.dump(result.to_json(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(result)


def emit_failure(payload: dict, as_json: bool) -> None:
    if as_json:
        json.dump(payload, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
