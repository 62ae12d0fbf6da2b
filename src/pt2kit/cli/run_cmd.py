"""`pt2kit run model.pt2 --input ...`: runs without importing the model's source."""

from __future__ import annotations

import argparse

from pt2kit.cli.common import add_input_arguments, add_json_argument, check_output, emit, parsed_inputs


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifact", metavar="ARTIFACT", help="a .pt2 program or AOTInductor package")
    add_input_arguments(p)
    p.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                   help="capture and replay a CUDA graph (a CUDA package); default: what the manifest's load options say")
    p.add_argument("--out", metavar="FILE.safetensors", help="write every output tensor here, keyed by its name")
    add_json_argument(p)


def run(args: argparse.Namespace) -> int:
    from pt2kit.runtime.execution import run_artifact

    check_output(args.out, "--out")
    emit(run_artifact(args.artifact, parsed_inputs(args), out=args.out, seed=args.seed, cuda_graphs=args.cuda_graphs), args.json)
    return 0
