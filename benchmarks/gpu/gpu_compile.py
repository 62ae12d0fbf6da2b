"""GPU: compile a CNN and a transformer for CUDA with pt2kit, then load and time them in fresh processes.

Run on the GPU machine (results: benchmarks/gpu/gpu_compile.md):

    PYTHONPATH=src python benchmarks/gpu/gpu_compile.py --out OUTDIR

For each model: export + `compile_package(device="cuda")` (build time, package size), then in
fresh child processes: `pt2kit.load` without LD_PRELOAD (does pt2kit detect the libstdc++ crash?),
and with `LD_PRELOAD=<system libstdc++>` (load time, latency: median of 50 CUDA-event timed calls,
through pt2kit and through the raw loader).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common
from common import median  # noqa: E402


def build_models():
    import torch
    from torch import nn
    from transformers import BertConfig, BertModel, ResNetConfig, ResNetForImageClassification

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = ResNetForImageClassification(ResNetConfig())  # ResNet-50 layout, random weights

        def forward(self, pixel_values):
            return self.m(pixel_values).logits

    class Bert(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = BertModel(BertConfig())  # BERT-base layout, random weights

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    torch.manual_seed(0)
    return {
        "resnet50": (CNN().eval(), (torch.randn(32, 3, 224, 224),), "batch 32, 224x224"),
        "bert-base": (Bert().eval(), (torch.randint(0, 30000, (16, 128)), torch.ones(16, 128, dtype=torch.int64)), "16 x 128 tokens"),
    }


def cpp_check(out: Path, name: str, module, args) -> dict:
    """Build the C++ runner here and run the CUDA package with it (no Python in that process)."""
    import torch

    from pt2kit.runtime.loader import libstdcxx_hint
    from pt2kit.cpp import build_cpp_runner, run_cpp_runner

    try:
        runner = build_cpp_runner(out / "runner")
        os.environ["LD_PRELOAD"] = libstdcxx_hint().split("LD_PRELOAD=")[1].split("`")[0]
        t = time.perf_counter()
        (got,) = run_cpp_runner(runner.executable, out / f"{name}.aoti.pt2", list(args))
        seconds = time.perf_counter() - t
        os.environ.pop("LD_PRELOAD")
        with torch.no_grad():
            want = module.cuda()(*[a.cuda() for a in args]).cpu()
        return {"build_s": runner.seconds, "process_s": seconds, "max_abs_diff": float((got - want).abs().max())}
    except Exception as exc:  # a benchmark: record, do not stop
        return {"error": f"{type(exc).__name__}: {exc}"[:600]}


def parent(out: Path, models: list[str], cpp: bool = False) -> None:
    import torch

    import pt2kit
    from pt2kit.runtime.loader import libstdcxx_hint, loaded_libstdcxx

    rows = []
    log = {"torch": torch.__version__, "card": torch.cuda.get_device_name(0), "libstdcxx_in_process": loaded_libstdcxx(),
           "hint": libstdcxx_hint(), "models": {}}
    for name, (module, args, shape) in build_models().items():
        if models and name not in models:
            continue
        target = pt2kit.Target(name, module, args)
        t = time.perf_counter()
        result = pt2kit.export_program(target, out / f"{name}.pt2", check_specialization=False)
        export_s = time.perf_counter() - t
        built = pt2kit.compile_package(out / f"{name}.pt2", out / f"{name}.aoti.pt2", device="cuda", use_cache=False)
        info = {"shape": shape, "export_s": export_s, "build_s": built.build_seconds, "size_mb": built.size_bytes / 1e6}
        for mode in ("plain", "preload"):
            env = dict(os.environ)
            env.pop("LD_PRELOAD", None)
            if mode == "preload":
                env["LD_PRELOAD"] = libstdcxx_hint().split("LD_PRELOAD=")[1].split("`")[0]
            proc = subprocess.run([sys.executable, __file__, "--child", str(out / f"{name}.aoti.pt2"), "--model", name],
                                  capture_output=True, text=True, env=env, timeout=400)
            (out / f"{name}.{mode}.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
            last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
            info[mode] = json.loads(last) if last.startswith("{") else {"returncode": proc.returncode, "stderr": proc.stderr[-800:]}
        if cpp:
            info["cpp"] = cpp_check(out, name, module, args)
        log["models"][name] = info
        print(json.dumps({name: info}), flush=True)
        del module
    (out / "gpu_compile.json").write_text(json.dumps(log, indent=2))
    print(f"\ncard {log['card']}, torch {log['torch']}")
    print("| model | input | export s | AOTI build s | package MB | pt2kit.load s (1st, probe) | load s (2nd) | pt2kit call ms | raw loader ms | no LD_PRELOAD |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, i in log["models"].items():
        p = i.get("preload", {})
        plain = i.get("plain", {})
        verdict = plain.get("error", "loaded fine") if "error" in plain or "load_s" in plain else f"exit {plain.get('returncode')}"
        print(f"| {name} | {i['shape']} | {i['export_s']:.1f} | {i['build_s']:.1f} | {i['size_mb']:.1f} | {p.get('load_s', float('nan')):.2f} "
              f"| {p.get('load2_s', float('nan')):.3f} | {p.get('pt2kit_ms', float('nan')):.3f} | {p.get('raw_ms', float('nan')):.3f} | {verdict[:160]} |")


def child(package: str, name: str) -> None:
    import torch

    import pt2kit
    from pt2kit.runtime.loader import loaded_libstdcxx

    module, args, _ = build_models()[name]
    del module
    args = [a.cuda() for a in args]
    report = {"libstdcxx": loaded_libstdcxx(), "ld_preload": os.environ.get("LD_PRELOAD", "")}
    t = time.perf_counter()
    try:
        model = pt2kit.load(package)
    except pt2kit.ArtifactError as exc:
        report["error"] = str(exc)
        print(json.dumps(report))
        return
    report["load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    pt2kit.load(package)
    report["load2_s"] = time.perf_counter() - t

    def median_ms(fn, n=50):
        for _ in range(10):
            fn()
        times = []
        for _ in range(n):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        return median(times)

    with torch.inference_mode():
        report["pt2kit_ms"] = median_ms(lambda: model(*args))
        raw = model._runner.loader
        report["raw_ms"] = median_ms(lambda: raw.run(list(args)))
    print(json.dumps(report))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="out/gpu")
    parser.add_argument("--child")
    parser.add_argument("--model")
    parser.add_argument("--models", nargs="*", default=[], help="only these (default: all)")
    parser.add_argument("--cpp", action="store_true", help="also build the C++ runner and run each package with it")
    a = parser.parse_args()
    if a.child:
        child(a.child, a.model)
    else:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        from pt2kit import progress

        progress.set_quiet(True)
        parent(Path(a.out), a.models, a.cpp)
