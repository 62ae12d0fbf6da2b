"""GPU: how long `pt2kit.load` of a CUDA package takes in a fresh process, and what it says without LD_PRELOAD.

    PYTHONPATH=src python3 benchmarks/gpu/gpu_load.py PACKAGE.aoti.pt2 [DTYPE:]INPUT_SHAPE [--repeat 3]   (results: gpu_compile.md)

Each case is a new process; `torch` and `pt2kit` are imported before the clock starts; the clock runs
from the load call to the first result (synchronized) of a CUDA input of INPUT_SHAPE (e.g. 8,3,224,224):
  pt2kit.load, LD_PRELOAD=<system libstdc++>      (--repeat processes; also a CPU tensor through the API)
  torch._inductor.aoti_load_package, LD_PRELOAD   (the raw baseline)
  pt2kit.load, no LD_PRELOAD                       (the one-line clash error, and how long it took)
  the raw loader, no LD_PRELOAD                    (ground truth: does it really crash here?)
Every child also prints pt2kit's libstdc++ verdict for the package in its own process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: common
from common import median  # noqa: E402

CHILD = r"""
import json, sys, time
import torch, pt2kit
from pathlib import Path
path, how, spec = sys.argv[1], sys.argv[2], sys.argv[3]
dtype_name, _, dims = spec.rpartition(":")  # "bfloat16:8,3,224,224" or "8,3,224,224" (float32)
dtype, shape = getattr(torch, dtype_name or "float32"), [int(s) for s in dims.split(",")]
report = {"how": how}
from pt2kit.runtime.libstdcxx import check_package
if how == "plain":
    import torch._inductor.package
x = torch.randn(*shape, device="cuda").to(dtype)
torch.cuda.synchronize()
t = time.perf_counter()
try:
    if how == "pt2kit":
        model = pt2kit.load(path)
    elif how == "profile":  # where pt2kit.load's time goes
        import cProfile, io, pstats
        prof = cProfile.Profile()
        model = prof.runcall(pt2kit.load, path)
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumtime").print_stats(12)
        report["profile"] = text.getvalue()[-3000:]
    elif how == "plain":
        model = torch._inductor.aoti_load_package(path)
    else:
        model = torch._C._aoti.AOTIModelPackageLoader(path, "model", False, 1, -1)
    loaded = time.perf_counter()
    y = model(x) if how != "raw" else model.run([x])
    torch.cuda.synchronize()
    done = time.perf_counter()
    report.update(load_s=loaded - t, first_call_s=done - loaded, total_s=done - t)
except pt2kit.ArtifactError as exc:
    report.update(error=str(exc), error_s=time.perf_counter() - t)
check = check_package(Path(path))
report["verdict"] = check.verdict.value
report["reason"] = check.reason
report["bound_elsewhere"] = list(check.bound_elsewhere[:5])
report["mapped"] = list(check.mapped)
if how == "pt2kit" and "error" not in report:
    try:
        model(torch.randn(*shape).to(dtype))
    except pt2kit.InputMismatchError as exc:
        report["cpu_tensor"] = str(exc)
print(json.dumps(report))
"""


def run(package: str, how: str, shape: str, preload: bool) -> dict:
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
    proc = subprocess.run([sys.executable, "-c", CHILD, package, how, shape], capture_output=True, text=True, env=env, timeout=300)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    doc = json.loads(last) if last.startswith("{") else {"how": how, "returncode": proc.returncode, "stderr": proc.stderr[-300:]}
    doc["ld_preload"] = preload
    print(json.dumps(doc), flush=True)
    return doc


def main() -> None:
    package, shape = sys.argv[1], sys.argv[2]
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 3
    import torch

    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}; package {package}", flush=True)
    ours = [run(package, "pt2kit", shape, True) for _ in range(repeat)]
    profiled = run(package, "profile", shape, True)
    print(profiled.get("profile", ""), flush=True)
    plain = run(package, "plain", shape, True)
    clash = run(package, "pt2kit", shape, False)
    truth = run(package, "raw", shape, False)
    print("| loader | LD_PRELOAD | load s | first call s | load call -> first result s | libstdc++ verdict |")
    print("| --- | --- | --- | --- | --- | --- |")
    done = [r for r in ours if "total_s" in r]
    if done:
        med = {k: median(r[k] for r in done) for k in ("load_s", "first_call_s", "total_s")}
        print(f"| pt2kit.load (median of {len(done)}) | yes | {med['load_s']:.3f} | {med['first_call_s']:.3f} | {med['total_s']:.3f} | {done[0]['verdict']} |")
    for name, r in (("aoti_load_package", plain), ("pt2kit.load", clash), ("AOTIModelPackageLoader", truth)):
        if "total_s" in r:
            print(f"| {name} | {'yes' if r['ld_preload'] else 'no'} | {r['load_s']:.3f} | {r['first_call_s']:.3f} | {r['total_s']:.3f} | {r.get('verdict')} |")
        else:
            what = r.get("error") or f"exit {r.get('returncode')}"
            print(f"| {name} | {'yes' if r['ld_preload'] else 'no'} | {what[:200]} ({r.get('error_s', 0):.3f} s) | | | {r.get('verdict')} |")


if __name__ == "__main__":
    main()
