"""Partial AOT against eager and torch.compile on models whose top level does not export.

    python benchmarks/cpu/partial.py                 # writes benchmarks/cpu/partial.md
    python benchmarks/cpu/partial.py --iters 20      # quicker, noisier

For each model: the region archive is built (`pt2kit compile --partial --no-cache`, in its own process); cold starts are measured in
fresh processes (clock from before `import torch` to the first output): eager, torch.compile with an empty Inductor
cache, torch.compile again with that cache now warm, and partial AOT (`apply_regions` on the user's model); steady
state is measured in one process, the three modes interleaved round-robin. One torch thread everywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common
from common import cpu_model, median  # noqa: E402
MARKER = "<!-- hand-written notes below: kept when the script rewrites the figures above -->"
CASES = {
    "refiner": ("examples/partial_refiner.py", "refiner", "MLP blocks (4 x 128-512-128) under a `while` on tensor values, "
                "a NumPy call and a data-dependent output dict; input float32[8, 16, 32]"),
    "early_exit_lm": ("examples/partial_lm.py", "early_exit_lm", "6 transformer blocks (width 128, 4 heads) with a "
                      "data-dependent early exit and a Python list side effect; input int64[4, 64]"),
}


def child(mode: str, case: str, archive: str) -> None:
    """One cold start, in this fresh process: build the model, prepare `mode`, run once; prints a JSON line."""
    start = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "examples"))
    file, name, _ = CASES[case]
    module = __import__(Path(file).stem)
    model = getattr(module, name)()
    x = module.example_args[0]
    imported = time.perf_counter()
    if mode.startswith("compile"):
        model = torch.compile(model)
    elif mode == "partial":
        import pt2kit

        model = pt2kit.apply_regions(model, archive)
    ready = time.perf_counter()
    with torch.no_grad():
        model(x)
    done = time.perf_counter()
    print(json.dumps({"import_s": imported - start, "setup_s": ready - imported, "first_call_s": done - ready,
                      "total_s": done - start}))


def cold(mode: str, case: str, archive: str, inductor_cache: str) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": inductor_cache, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, __file__, "--child", mode, case, archive], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} {case} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def steady(case: str, archive: str, iters: int, warmup: int) -> tuple[dict, float]:
    import torch

    import pt2kit

    sys.path.insert(0, str(ROOT / "examples"))
    file, name, _ = CASES[case]
    module = __import__(Path(file).stem)
    x = module.example_args[0]
    models = {"eager": getattr(module, name)(), "torch.compile": torch.compile(getattr(module, name)()),
              "partial AOT": pt2kit.apply_regions(getattr(module, name)(), archive)}
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.no_grad():
        reference = models["eager"](x)
        worst = 0.0
        for label, model in models.items():
            for _ in range(warmup):
                out = model(x)
            first = reference["logits"] if isinstance(reference, dict) else reference
            got = out["logits"] if isinstance(out, dict) else out
            worst = max(worst, float((first - got).abs().max())) if label == "partial AOT" else worst
        for _ in range(iters):
            for label, model in models.items():
                begin = time.perf_counter()
                model(x)
                times[label].append(time.perf_counter() - begin)
        # what a region adds per call (binding and checking inputs against its contract) over the bare package
        from pt2kit.partial import regions_of

        region = next(iter(regions_of(models["partial AOT"]).values()))
        shape = [int(d) for d in region.contract.inputs[0].shape]
        h = torch.randn(*shape)
        checked, bare = [], []
        for _ in range(iters * 4):
            begin = time.perf_counter()
            region(h)
            checked.append(time.perf_counter() - begin)
            begin = time.perf_counter()
            region.runner.run_flat([h])
            bare.append(time.perf_counter() - begin)
    overhead = median(checked) - median(bare)
    summary = {k: (median(v), min(v)) for k, v in times.items()}
    return summary, worst, (region.path, median(bare), overhead)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    parser.add_argument("--child", nargs=3, metavar=("MODE", "CASE", "ARCHIVE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    import torch

    torch.set_num_threads(1)
    rows, notes = [], []
    loads = [os.getloadavg()]
    work = Path(tempfile.mkdtemp(prefix="pt2kit-bench-partial-"))
    for case in args.cases.split(","):
        file, name, about = CASES[case]
        archive = work / f"{case}.regions.pt2"
        # built in another process: a failed torch.export leaves this process's eager ops slower (see the notes)
        begin = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pt2kit", "compile", f"{file}:{name}", "--partial", "-o", str(archive),
                               "--no-cache", "--json", "-q"], capture_output=True, text=True, cwd=ROOT, timeout=1800,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})  # built with one thread, like every measurement
        build = time.perf_counter() - begin
        if proc.returncode != 0:
            raise RuntimeError(f"pt2kit compile --partial {case} failed: {proc.stderr[-2000:]}")
        result = json.loads(proc.stdout)
        groups = {r["group"] for r in result["regions"]}
        print(f"{case}: {len(result['regions'])} regions, {len(groups)} packages, {result['share']:.0%}", flush=True)
        cache = str(work / f"inductor-{case}")
        measured = {
            "eager": cold("eager", case, str(archive), cache),
            "torch.compile (empty cache)": cold("compile", case, str(archive), cache),
            "torch.compile (warm cache)": cold("compile-warm", case, str(archive), cache),
            "partial AOT": cold("partial", case, str(archive), cache),
        }
        medians, worst, (region_path, bare, overhead) = steady(case, str(archive), args.iters, args.warmup)
        loads.append(os.getloadavg())
        steady_of = {"eager": medians["eager"], "torch.compile (empty cache)": medians["torch.compile"],
                     "torch.compile (warm cache)": medians["torch.compile"], "partial AOT": medians["partial AOT"]}
        for mode, c in measured.items():
            rows.append((case, mode, c["setup_s"], c["first_call_s"], c["total_s"], steady_of[mode][0] * 1e3, steady_of[mode][1] * 1e3))
        medians = {k: v[0] for k, v in medians.items()}
        compiled = ", ".join(f"`{r['path']}`" for r in result["regions"])
        stayed = "; ".join(f"`{e['path'] or '(model)'}` ({e['kind']})" for e in result["eager"])
        notes.append(f"- `{case}` ({about}): {len(result['regions'])} regions in {len(groups)} package(s) cover "
                     f"{result['share']:.0%} of the eager time; `pt2kit compile --partial --no-cache` took {build:.1f}s "
                     f"({(archive.stat().st_size) / 1e6:.1f} MB); largest difference from eager in the steady-state "
                     f"outputs {worst:.2g}; speed-up of the steady state over eager "
                     f"{medians['eager'] / medians['partial AOT']:.2f}x (torch.compile {medians['eager'] / medians['torch.compile']:.2f}x); "
                     f"region `{region_path}`: {bare * 1e3:.3f} ms per call of its package, plus {overhead * 1e6:.0f} us "
                     f"of contract checks. Compiled: {compiled}; stayed eager: {stayed}.")
        print(notes[-1], flush=True)
    table = ["| model | mode | setup s | first call s | process start -> first output s | steady p50 ms | steady best ms |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    table += [f"| {c} | {m} | {s:.3f} | {f:.3f} | {t:.3f} | {p:.2f} | {b:.2f} |" for c, m, s, f, t, p, b in rows]
    text = "\n".join([
        "# Partial AOT against eager and torch.compile",
        "",
        f"Recorded by `python benchmarks/cpu/partial.py --iters {args.iters} --warmup {args.warmup}` on "
        f"{time.strftime('%Y-%m-%d')}: {cpu_model()}, {os.cpu_count()} cores (shared with other jobs; load average "
        f"{', '.join(f'{a[0]:.1f}' for a in loads)} at the start and after each model), torch {torch.__version__}, "
        f"Python {platform.python_version()}, one torch thread.",
        "",
        "Cold start: a fresh process per row; the clock starts before `import torch`. `setup` is `torch.compile(model)` or "
        "`pt2kit.apply_regions(model, archive)` (nothing for eager); `first call` includes torch.compile's compilation "
        "(its Inductor cache empty, then warm from the row before). Steady state: the three modes interleaved "
        "round-robin in one process, median and fastest of the iterations after warm-up (the two torch.compile rows "
        "share one steady-state figure; on a machine this loaded the fastest iteration is the steadier estimate of "
        "each mode's own cost). The archives were built with one thread too (`OMP_NUM_THREADS=1`).",
        "",
        *table,
        "",
        *notes,
        "",
    ])
    out = Path(args.out)
    kept = out.read_text().split(MARKER, 1)[1] if out.exists() and MARKER in out.read_text() else ""
    out.write_text(text + (MARKER + kept if kept else ""))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
