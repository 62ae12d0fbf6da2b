"""`pt2kit inspect model.pt2`."""

from __future__ import annotations

import argparse

from pt2kit.cli.common import add_json_argument, emit


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", metavar="ARTIFACT", help="a .pt2 program or AOTInductor package")
    p.add_argument("--graph", action="store_true", help="also print the graph")
    add_json_argument(p)


def run(args: argparse.Namespace) -> int:
    from pt2kit.artifact.inspection import inspect_artifact

    emit(inspect_artifact(args.artifact, graph=args.graph), args.json)
    return 0
