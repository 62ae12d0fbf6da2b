"""Per-call overhead of `pt2kit.load(...)(x)` over calling the loaded AOTInductor package directly.

    python benchmarks/cpu/load_overhead.py [PACKAGE.aoti.pt2]   (default: builds tests/cases/linear_relu.py:model)

Three callables on the same package and the same input, timed interleaved (round-robin
blocks, so load on a shared machine hits all three alike); the median over rounds of the
mean time per call in a block:
  direct  `torch._inductor.aoti_load_package(path)(x)`    (torch's own Python wrapper)
  raw     `loader.run([x])` on torch._C._aoti.AOTIModelPackageLoader (no Python wrapper at all)
  pt2kit  `pt2kit.load(path)(x)`                            (manifest checks + the call)
  pt2kit checks only: the flatten + `contract.check_inputs` that pt2kit adds, without the call
Results: benchmarks/cpu/load_overhead.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common
from common import cpu_model, median  # noqa: E402

import torch


def small_package(folder: Path) -> Path:
    import pt2kit
    from pt2kit import progress

    progress.set_quiet(True)
    root = Path(__file__).resolve().parents[2]
    target = pt2kit.load_target(f"{root}/tests/cases/linear_relu.py:model")
    program = pt2kit.export_program(target, folder / "linear.pt2", dynamic="input:0=batch[1,64]", check_specialization=False)
    return pt2kit.compile_package(program.path, folder / "linear.aoti.pt2").path


def per_call_us(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("package", nargs="?")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    import torch._inductor

    import pt2kit

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.package) if args.package else small_package(Path(tmp))
        artifact = pt2kit.load(path)
        direct = torch._inductor.aoti_load_package(str(path))
        raw = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)
        x = torch.randn(args.batch, *[s for s in artifact.manifest.inputs[0].shape[1:]])
        from pt2kit.artifact.contract import check_inputs

        runner, manifest = artifact._runner, artifact.manifest

        def checks_only():  # everything pt2kit adds around the call, without the call
            leaves = runner.flatten((x,), {})
            check_inputs(manifest, leaves)
            return [t for t in leaves if isinstance(t, torch.Tensor)]

        fns = {"direct": lambda: direct(x), "raw": lambda: raw.run([x]), "pt2kit": lambda: artifact(x), "pt2kit checks only": checks_only}
        with torch.inference_mode():
            for fn in fns.values():
                per_call_us(fn, 200)
            samples = {name: [] for name in fns}
            for _ in range(args.rounds):
                for name, fn in fns.items():
                    samples[name].append(per_call_us(fn, args.calls))
    med = {name: median(v) for name, v in samples.items()}
    over = med["pt2kit"] - med["direct"]
    budget = max(20.0, 0.02 * med["direct"])
    print(f"machine: {cpu_model()}, {torch.get_num_threads()} threads; torch {torch.__version__}; "
          f"python {sys.version.split()[0]}; package {path.name}, input [{args.batch}, ...]")
    print("| call | median us/call |")
    print("| --- | --- |")
    for name, v in med.items():
        print(f"| {name} | {v:.2f} |")
    print(f"overhead of pt2kit over direct: {over:+.2f} us/call (budget {budget:.1f} us); over raw: {med['pt2kit'] - med['raw']:+.2f} us")


if __name__ == "__main__":
    main()
