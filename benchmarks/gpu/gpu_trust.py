"""Issue 23, points 5 and 6, measured: the first `pt2kit.load` of a CUDA package, and partial regions at another batch.

    PYTHONPATH=src python3 benchmarks/gpu/gpu_trust.py load PACKAGE [DTYPE:]SHAPE [--device cuda]   (results: gpu_compile.md)
    PYTHONPATH=src python3 benchmarks/gpu/gpu_trust.py regions FILE.py:NAME ARCHIVE INPUT --batches 2,3,5 [--device cuda]

`load`: every row is a new process (`torch` and `pt2kit` imported, the input made, before the clock), given its own
`PT2KIT_CACHE_DIR` so that a package is "new" (no cached probe verdict) or "seen" (the verdict of an earlier row):
  check      pt2kit's path: the libstdc++ decision from ELF data (no child process where it can decide)
  probe      the path that opens the package in a child first, as when the ELF check cannot decide: pyelftools is
             hidden in that process (`sys.modules["elftools"] = None`), which is what a run without it did
  no-preload pt2kit's path without LD_PRELOAD (the case the check cannot decide: the child runs and explains)
Each row prints the load time, the first call, a second `pt2kit.load` in the same process, the verdict and its reason,
and the warnings the load gave.

`regions`: applies a region archive to a fresh model, runs it at each batch (warnings from the regions are errors),
and compares with the eager model; prints the regions' compiled and eager call counts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

LOAD_CHILD = r"""
import json, os, sys, time, warnings
if os.environ.get("HIDE_ELFTOOLS") == "1":
    sys.modules["elftools"] = None  # the path without pyelftools: the ELF check is undecided, the child probe runs
import torch, pt2kit
from pathlib import Path
path, spec, device = sys.argv[1], sys.argv[2], sys.argv[3]
dtype_name, _, dims = spec.rpartition(":")
x = torch.randn(*[int(s) for s in dims.split(",")], device=device).to(getattr(torch, dtype_name or "float32"))
if device == "cuda":
    torch.cuda.synchronize()
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
report = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    t = time.perf_counter()
    try:
        model = pt2kit.load(path)
        loaded = time.perf_counter()
        model(x)
        sync()
        done = time.perf_counter()
        model2 = pt2kit.load(path)
        again = time.perf_counter() - done
        report.update(load_s=round(loaded - t, 3), first_call_s=round(done - loaded, 3), second_load_same_process_s=round(again, 3))
    except pt2kit.ArtifactError as exc:
        report.update(error=str(exc)[:300], error_after_s=round(time.perf_counter() - t, 3))
report["warnings"] = [str(w.message)[:300] for w in caught if "pt2kit" in type(w.message).__module__]
try:
    from pt2kit.runtime.libstdcxx import check_package
    t = time.perf_counter()
    check = check_package(Path(path))
    report.update(check_s=round(time.perf_counter() - t, 3), verdict=check.verdict.value, reason=check.reason[:300],
                  needs=list(check.needed)[-3:])
except Exception as exc:
    report.update(verdict="(not checked)", reason=f"{type(exc).__name__}: {exc}"[:200])
print(json.dumps(report))
"""

REGIONS_CHILD = r"""
import json, sys, warnings
import torch, pt2kit
from pt2kit.partial import RegionFallbackWarning, regions_of
from pt2kit.target.resolve import load_target
spec, archive, kind, device, batches = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
dtype_name, _, dims = kind.partition(":")  # "float32:16,32" or "int64@512:64"
dtype_name, _, high = dtype_name.partition("@")
rest = [int(s) for s in dims.split(",")]

def make(batch):
    g = torch.Generator().manual_seed(batch)
    if dtype_name.startswith("int"):
        return torch.randint(0, int(high), (batch, *rest), generator=g).to(device)
    return torch.randn(batch, *rest, generator=g).to(device)

compiled = pt2kit.apply_regions(load_target(spec).module.to(device), archive)
eager = load_target(spec).module.to(device)
rows = []
for batch in [int(b) for b in batches.split(",")]:
    x = make(batch)
    row = {"batch": batch}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RegionFallbackWarning)
            with torch.no_grad():
                got, want = compiled(x), eager(x)
        flat_got = torch.utils._pytree.tree_leaves(got)
        flat_want = torch.utils._pytree.tree_leaves(want)
        row["max_abs_diff"] = max(float((a.float() - b.float()).abs().max()) for a, b in zip(flat_got, flat_want) if a.is_floating_point())
    except RegionFallbackWarning as exc:
        row["fallback"] = str(exc)[:300]
    rows.append(row)
regions = regions_of(compiled)
print(json.dumps({"target": spec, "device": device, "rows": rows,
                  "regions": {p: [r.compiled_calls, r.eager_calls] for p, r in regions.items()}}))
"""


def child(code: str, args: list[str], env: dict, timeout: int) -> dict:
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s"}
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    doc = json.loads(last) if last.startswith("{") else {"returncode": proc.returncode, "stderr": proc.stderr[-400:]}
    doc["process_s"] = round(time.perf_counter() - start, 2)
    return doc


def run_load(package: str, shape: str, device: str, preload: str, timeout: int, quick: bool = False) -> None:
    caches = tempfile.mkdtemp(prefix="pt2kit-trust-")
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "HIDE_ELFTOOLS", "PT2KIT_NO_PROBE")}
    with_preload = {**base, "LD_PRELOAD": preload} if preload else dict(base)
    rows = [  # (label, cache folder, extra env)
        ("check, new package", "a", {}), ("check, new package (2nd process)", "b", {}), ("check, seen package", "a", {}),
        ("probe, new package", "p", {"HIDE_ELFTOOLS": "1"}), ("probe, seen package", "p", {"HIDE_ELFTOOLS": "1"}),
    ]
    if quick:  # one process per case: less device time
        rows = [r for r in rows if "2nd" not in r[0]]
    for label, cache, extra in rows:
        env = {**with_preload, **extra, "PT2KIT_CACHE_DIR": os.path.join(caches, cache)}
        print(json.dumps({"row": label, "ld_preload": bool(preload), **child(LOAD_CHILD, [package, shape, device], env, timeout)}),
              flush=True)
    if preload and not quick:
        env = {**base, "PT2KIT_CACHE_DIR": os.path.join(caches, "n")}
        print(json.dumps({"row": "no-preload, new package", "ld_preload": False,
                          **child(LOAD_CHILD, [package, shape, device], env, timeout)}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    load = sub.add_parser("load")
    load.add_argument("package")
    load.add_argument("shape", help="[DTYPE:]D0,D1,... e.g. bfloat16:8,3,224,224")
    regions = sub.add_parser("regions")
    regions.add_argument("target")
    regions.add_argument("archive")
    regions.add_argument("input", help="DTYPE[@HIGH]:D1,D2,... (dims after the batch), e.g. float32:16,32 or int64@512:64")
    regions.add_argument("--batches", default="2,3,5")
    for p in (load, regions):
        p.add_argument("--device", default="cuda")
        p.add_argument("--timeout", type=int, default=90)
    load.add_argument("--quick", action="store_true", help="skip the second new-package process and the no-preload row")
    load.add_argument("--preload", default="/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
                      help="LD_PRELOAD for the rows that set it ('' for none)")
    args = parser.parse_args()
    if args.what == "load":
        run_load(args.package, args.shape, args.device, args.preload, args.timeout, args.quick)
    else:
        print(json.dumps(child(REGIONS_CHILD, [args.target, args.archive, args.input, args.device, args.batches],
                               dict(os.environ), args.timeout)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
