"""Cold start: from the load call to the first result, in a fresh process with an empty Inductor cache.

    python benchmarks/cold_start.py [PACKAGE.aoti.pt2] [--repeat 3]

Four cases, each in a new process with TORCHINDUCTOR_CACHE_DIR set to a new empty folder;
`import torch, pt2kit` happens before the clock starts (and `torch._inductor.package` for the plain
loader, its own module); whatever else `pt2kit.load` imports is inside the clock:
  plain aoti_load_package, g++ on the PATH / no compiler on the PATH
  pt2kit.load,             g++ on the PATH / no compiler on the PATH
Results: benchmarks/cold_start.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

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


def run_case(package: Path, how: str, compiler: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(Path(tmp) / "inductor")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # time imports as an installed package has them: compiled
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
    args = parser.parse_args()
    import platform

    import torch

    import compileall

    import pt2kit

    compileall.compile_dir(str(Path(pt2kit.__file__).parent), quiet=1)  # an editable install may have no .pyc yet
    with tempfile.TemporaryDirectory() as tmp:
        if args.package:
            package = Path(args.package)
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from load_overhead import small_package

            package = small_package(Path(tmp))
        rows = []
        for how in ("plain", "pt2kit"):
            for compiler in (True, False):
                runs = [run_case(package, how, compiler) for _ in range(args.repeat)]
                rows.append((how, compiler, {k: statistics.median(r[k] for r in runs) for k in runs[0]}))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}; package {package.name}; "
          f"median of {args.repeat} fresh processes, empty Inductor cache each; load average {os.getloadavg()[0]:.2f}")
    print("| loader | compiler on PATH | load s | first call s | load call -> first result s |")
    print("| --- | --- | --- | --- | --- |")
    for how, compiler, r in rows:
        name = "torch._inductor.aoti_load_package" if how == "plain" else "pt2kit.load"
        print(f"| {name} | {'g++' if compiler else 'none'} | {r['load_s']:.3f} | {r['first_call_s']:.3f} | {r['total_s']:.3f} |")


if __name__ == "__main__":
    main()
