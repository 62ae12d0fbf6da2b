"""GPU: the C++ runner's outputs on a CUDA package, against eager and `pt2kit.load` (issue 12, point 8).

    PYTHONPATH=src python3 benchmarks/gpu/gpu_cpp_compare.py RUNNER NAME --workdir DIR [--sizes 2x8,1x13,3x32]

NAME is an entry of tests/architectures.py. The script exports it on the CPU with its dynamic batch and
sequence (`pt2kit.export_program`, as `pt2kit export` does) and builds `DIR/NAME.aoti.pt2` with
`pt2kit.compile_package(..., device="cuda")` unless that package is already there. For each BATCHxSEQ it
makes token ids and an attention mask with padding in the last row, runs the model eagerly on the GPU,
then the package through `pt2kit.load` and through the C++ runner (inputs as a `{name: tensor}` file,
bound by the manifest's order), and prints one JSON line per size: the largest difference of each from
eager over every output leaf, and whether each is within fp32 tolerance (atol 1e-3, rtol 1e-3; TF32 off).
Results: benchmarks/gpu/gpu_compile.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils import _pytree as pytree

sys.path.insert(0, "tests")

import architectures  # noqa: E402

import pt2kit  # noqa: E402
from pt2kit.cpp import run_cpp_runner  # noqa: E402

ATOL = RTOL = 1e-3


def build(name: str, model: torch.nn.Module, workdir: Path, device: str) -> Path:
    package = workdir / f"{name}.{device}.aoti.pt2"
    if not package.exists():
        entry = architectures.SURVEY[name]
        target = pt2kit.Target(f"architectures.py:{name}", model, (), dict(entry["kwargs"]))
        program = workdir / f"{name}.pt2"
        start = time.perf_counter()
        pt2kit.export_program(target, program, dynamic=entry["dynamic"], check_specialization=False)
        exported = time.perf_counter()
        pt2kit.compile_package(program, package, device=device, use_cache=False)
        print(json.dumps({"model": name, "export_s": round(exported - start, 1),
                          "compile_s": round(time.perf_counter() - exported, 1)}), flush=True)
    return package


def inputs(batch: int, seq: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(batch * 100 + seq)
    ids = torch.randint(0, architectures.VOCAB, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    if seq > 2:
        mask[-1, seq // 2:] = 0  # a padded row: the mask reaches the attention kernel
    return {"input_ids": ids, "attention_mask": mask}


def leaves(value) -> list:
    return [t for t in pytree.tree_leaves(value) if t is not None]


def compare(reference: list, got: list) -> dict:
    """Leaf by leaf; a constant leaf (`is_initialized = True`) is a 0-d tensor in the runner's output."""
    if len(reference) != len(got):
        return {"ok": False, "why": f"{len(got)} outputs, eager has {len(reference)}"}
    worst, ok = 0.0, True
    for r, g in zip(reference, got):
        if not isinstance(r, torch.Tensor):
            ok = ok and (g.item() if isinstance(g, torch.Tensor) else g) == r
            continue
        r, g = r.detach().float().cpu(), g.detach().float().cpu()
        if r.shape != g.shape:
            return {"ok": False, "why": f"shape {tuple(g.shape)} against eager {tuple(r.shape)}"}
        worst = max(worst, (r - g).abs().max().item() if r.numel() else 0.0)
        ok = ok and torch.allclose(r, g, atol=ATOL, rtol=RTOL)
    return {"ok": ok, "max_abs_diff": worst}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("runner")
    parser.add_argument("name")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--sizes", default="2x8,1x13,3x32")
    parser.add_argument("--device", default="cuda", help="cpu checks this script with a CPU package")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    entry = architectures.SURVEY[args.name]
    model = entry["model"]()
    args.package = build(args.name, model, Path(args.workdir), args.device)
    model = model.to(args.device)
    pt2kit.register_types(args.package)
    loaded = pt2kit.load(args.package)
    failures = 0
    for size in args.sizes.split(","):
        batch, seq = (int(s) for s in size.split("x"))
        cpu_inputs = inputs(batch, seq)
        gpu_inputs = {k: v.to(args.device) for k, v in cpu_inputs.items()}
        row: dict = {"model": args.name, "batch": batch, "seq": seq}
        with torch.no_grad():
            reference = leaves(model(**gpu_inputs))
            for how, run in (("pt2kit.load", lambda: leaves(loaded(**gpu_inputs))),
                             ("cpp_runner", lambda: run_cpp_runner(args.runner, args.package, cpu_inputs))):
                try:
                    row[how] = compare(reference, run())
                except Exception as exc:  # a failure is this row's result
                    row[how] = {"ok": False, "why": f"{type(exc).__name__}: {str(exc)[:400]}"}
        failures += not (row["pt2kit.load"]["ok"] and row["cpp_runner"]["ok"])
        print(json.dumps(row), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
