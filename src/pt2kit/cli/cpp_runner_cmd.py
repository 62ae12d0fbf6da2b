"""`pt2kit cpp-runner [-o DIR]`: write and build the C++ program that runs a package without Python."""

from __future__ import annotations

import argparse

from pt2kit.cli.common import add_json_argument, count, emit


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default="pt2kit_runner", metavar="DIR", help="folder for the source and build (default pt2kit_runner)")
    p.add_argument("-j", "--jobs", type=count(1), help="parallel compile jobs (default: CPU count)")
    add_json_argument(p)


def run(args: argparse.Namespace) -> int:
    from pt2kit.cpp import build_cpp_runner

    emit(build_cpp_runner(args.output, jobs=args.jobs), args.json)
    return 0
