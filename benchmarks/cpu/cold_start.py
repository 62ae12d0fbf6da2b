"""Cold start: from the load call to the first result, in a fresh process with an empty Inductor cache.

    python benchmarks/cpu/cold_start.py [PACKAGE.aoti.pt2] [--repeat 3] [--before SRC] [--no-plain]

Four cases, each in a new process with TORCHINDUCTOR_CACHE_DIR set to a new empty folder;
`import torch, pt2kit` happens before the clock starts (and `torch._inductor.package` for the plain
loader, its own module); whatever else `pt2kit.load` imports is inside the clock:
  plain aoti_load_package, g++ on the PATH / no compiler on the PATH
  pt2kit.load,             g++ on the PATH / no compiler on the PATH
`--before SRC` adds `pt2kit.load` from another checkout's `src` folder (PYTHONPATH) in the same run, for
a side-by-side comparison; a "1 thread" row runs pt2kit with OMP_NUM_THREADS=1, to show how much of the
first call is the kernels' thread pool starting. Results: benchmarks/cpu/cold_start.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common
from common import cpu_model, median  # noqa: E402

CHILD = r"""
import json, sys, time
import torch, pt2kit
path, how = sys.argv[1], sys.argv[2]
if how == "plain":
    import torch._inductor.package
x = torch.randn(4, 16)
t = time.perf_counter()
model = pt2kit.load(path) if how == "pt2kit" else torch._inductor.aoti_load_package(path)
loaded = time.perf_counter()
y = model(x)
done = time.perf_counter()
print(json.dumps({"load_s": loaded - t, "first_call_s": done - loaded, "total_s": done - t}))
"""


def run_case(package: Path, how: str, compiler: bool, src: str | None = None, threads: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(Path(tmp) / "inductor")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # time imports as an installed package has them: compiled
        if src:
            env["PYTHONPATH"] = src
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        if not compiler:
            empty = Path(tmp) / "bin"
            empty.mkdir()
            env["PATH"] = str(empty)  # sys.executable is absolute, so python still starts
        proc = subprocess.run([sys.executable, "-c", CHILD, str(package), how], capture_output=True, text=True, env=env, timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"{how} (compiler={compiler}) failed: {proc.stderr[-800:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("package", nargs="?")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", metavar="SRC", help="another checkout's src/ to time pt2kit.load from, side by side")
    parser.add_argument("--no-plain", action="store_true", help="skip torch's own loader (its g++ case takes ~20 s a process)")
    args = parser.parse_args()
    import torch

    import compileall

    import pt2kit

    compileall.compile_dir(str(Path(pt2kit.__file__).parent), quiet=1)  # an editable install may have no .pyc yet
    if args.before:
        compileall.compile_dir(args.before, quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        if args.package:
            package = Path(args.package)
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from load_overhead import small_package

            package = small_package(Path(tmp))
        cases = [] if args.no_plain else [("torch._inductor.aoti_load_package", "plain", c, None, None) for c in (True, False)]
        cases += [("pt2kit.load", "pt2kit", c, None, None) for c in (True, False)]
        cases += [("pt2kit.load, 1 thread", "pt2kit", False, None, 1)]
        if args.before:
            cases += [(f"pt2kit.load from {args.before}", "pt2kit", c, args.before, None) for c in (True, False)]
        rows = []
        for name, how, compiler, src, threads in cases:
            runs = [run_case(package, how, compiler, src, threads) for _ in range(args.repeat)]
            rows.append((name, compiler, {k: median(r[k] for r in runs) for k in runs[0]}))
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}; package {package.name}; "
          f"median of {args.repeat} fresh processes, empty Inductor cache each; load average {os.getloadavg()[0]:.2f}")
    print("| loader | compiler on PATH | load s | first call s | load call -> first result s |")
    print("| --- | --- | --- | --- | --- |")
    for name, compiler, r in rows:
        print(f"| {name} | {'g++' if compiler else 'none'} | {r['load_s']:.3f} | {r['first_call_s']:.3f} | {r['total_s']:.3f} |")


if __name__ == "__main__":
    main()
