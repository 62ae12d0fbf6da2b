"""Arguments and output shared by several subcommands."""

from __future__ import annotations

import argparse
import json
import sys

INPUT_HELP = (
    "an input: NAME=DTYPE[SHAPE] (random), NAME=int64[2,128]@0..30000 (range), NAME=@file (.pt/.npy/.safetensors), "
    "@file.safetensors (all by key), NAME=3 (scalar); repeat for several"
)


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
