"""Billion-parameter decoders through pt2kit: export, compile, load, verify, and what each step costs.

    python benchmarks/gpu/large_models.py --models gpt2,llama-1.1b,llama-3b --device cuda --out DIR
    python benchmarks/gpu/large_models.py --models tiny --device cpu --out /tmp/lm     # a smoke run in a minute

Each model is built from its transformers config with random weights (no downloads), made directly in
`--dtype` on `--device` (so the host never holds an fp32 copy), and wrapped to return the logits
(`use_cache=False`) for a dynamic batch and sequence. Every step runs in a fresh process, as
`pt2kit export` / `pt2kit compile` / a server start would:

    export   pt2kit.export_program(target, MODEL.pt2, dynamic=...)            export time, peak RSS
    build    pt2kit.compile_package(MODEL.pt2, ..., device, dtype)            build time, time in compiler
                                                                              processes (g++, ld, objcopy: every
                                                                              subprocess Inductor runs), peak RSS
    load     plain torch._inductor.aoti_load_package, then pt2kit.load,      load time, first call, peak RSS,
             each in a fresh process (the first also warms the page cache)    GPU memory after load
    verify   pt2kit.verify_outputs(program, package) at the dims' extremes,   max error, ok
             in the pt2kit.load process after its figures are taken
    tune     `pt2kit tune MODEL.pt2 --dtypes DTYPE --recipes default`:        tune time, candidates (with and
             one build, timed with and without CUDA graph replay              without CUDA graphs), the choice
    serve    `pt2kit serve MODEL.aoti.pt2`, one request per sequence length   time to ready, latency per length

Peak RSS is sampled every 10 ms with psutil over the process and its children (the compile workers and
g++), and `resource.getrusage` gives the process's own high-water mark. One JSON line per step goes to
DIR/results.jsonl as soon as it is measured, and a markdown table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

MODELS = {  # name -> (transformers config class, config kwargs)
    "tiny": ("LlamaConfig", dict(hidden_size=64, num_hidden_layers=2, intermediate_size=128, num_attention_heads=4,
                                 num_key_value_heads=2, vocab_size=1000, max_position_embeddings=1024)),
    "gpt2": ("GPT2Config", dict()),  # 124M: 12 layers, 768 wide, vocab 50257
    "llama-0.5b": ("LlamaConfig", dict(hidden_size=1536, num_hidden_layers=16, intermediate_size=4096, num_attention_heads=12,
                                       num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048)),  # 1 GB of bf16 for CPU runs
    "llama-1.1b": ("LlamaConfig", dict(hidden_size=2048, num_hidden_layers=22, intermediate_size=5632, num_attention_heads=32,
                                       num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048)),  # TinyLlama
    "llama-3b": ("LlamaConfig", dict(hidden_size=3200, num_hidden_layers=26, intermediate_size=8640, num_attention_heads=32,
                                     num_key_value_heads=32, vocab_size=32000, max_position_embeddings=2048)),  # OpenLLaMA-3B
}
BATCH, SEQ = (1, 8), (2, 1024)  # the dynamic range exported; verify checks both ends of each
DTYPES = {"bf16": "bfloat16", "fp32": "float32"}


# ---------------------------------------------------------------- measuring

class PeakRss:
    """Samples the RSS of this process and of all its descendants every `interval` s, in a thread."""

    def __init__(self, interval: float = 0.01):
        try:
            import psutil
        except ImportError:  # no sampling: the figures fall back to getrusage's high-water mark
            psutil = None
        self.proc, self.interval = psutil.Process() if psutil else None, interval
        self.self_peak = self.tree_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                own = self.proc.memory_info().rss
                tree = own
                for child in self.proc.children(recursive=True):
                    try:
                        tree += child.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                continue
            self.self_peak, self.tree_peak = max(self.self_peak, own), max(self.tree_peak, tree)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRss":
        if self.proc is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.proc is not None:
            self._thread.join()
        else:
            self.self_peak = self.tree_peak = own_peak_bytes()


class CompilerTimer:
    """Times every process Inductor starts through `subprocess` (g++, ld, objcopy, nvcc...) while active."""

    def __init__(self):
        self.calls: list[tuple[str, float]] = []
        self._saved: dict[str, object] = {}
        self._depth = threading.local()

    def _wrap(self, fn):
        def timed(cmd, *args, **kwargs):
            depth = getattr(self._depth, "n", 0)
            self._depth.n = depth + 1
            start = time.perf_counter()
            try:
                return fn(cmd, *args, **kwargs)
            finally:
                self._depth.n = depth
                if depth == 0:  # check_output calls run: count the outer call once
                    argv = cmd.split() if isinstance(cmd, str) else list(cmd)
                    self.calls.append((os.path.basename(str(argv[0])) if argv else "?", time.perf_counter() - start))
        return timed

    def __enter__(self) -> "CompilerTimer":
        for name in ("run", "check_output", "check_call", "call"):
            self._saved[name] = getattr(subprocess, name)
            setattr(subprocess, name, self._wrap(self._saved[name]))
        return self

    def __exit__(self, *exc) -> None:
        for name, fn in self._saved.items():
            setattr(subprocess, name, fn)

    def summary(self) -> dict:
        slow = [(n, s) for n, s in self.calls if s > 0.05]  # version probes and the like are noise
        longest = max(slow, key=lambda c: c[1], default=("", 0.0))
        return {"compiler_s": round(sum(s for _, s in slow), 2), "compiler_calls": len(slow),
                "longest_compiler_call": longest[0], "longest_compiler_s": round(longest[1], 2)}


def own_peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_figures(rss: PeakRss, base: int) -> dict:
    """Peak RSS of the step (the sampler's and getrusage's, whichever is higher) and the baseline before it."""
    peak = max(rss.self_peak, own_peak_bytes())
    return {"rss_peak": peak, "rss_base": base, "rss_over_base": peak - base, "rss_tree_peak": max(rss.tree_peak, peak)}


def unique_bytes(module) -> int:
    """Bytes of the module's parameters and buffers, each storage once (GPT-2's tied embedding counts once)."""
    seen = {}
    for t in list(module.parameters()) + list(module.buffers()):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())


# ---------------------------------------------------------------- the steps (each in its own process)

def make_target(name: str, device: str, dtype: str):
    import torch
    import transformers

    import pt2kit

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench_models import DecoderLogits

    config_cls, kwargs = MODELS[name]
    config = getattr(transformers, config_cls)(**kwargs)
    torch.manual_seed(0)
    with torch.device(device):  # weights made where they will live, in their final dtype: no fp32 host copy
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=getattr(torch, DTYPES[dtype]))
    model.eval()
    ids = torch.randint(0, config.vocab_size, (2, 64), device=device)
    dynamic = f"input_ids:0=batch[{BATCH[0]},{BATCH[1]}],input_ids:1=seq[{SEQ[0]},{SEQ[1]}]"
    return pt2kit.Target(f"large_models:{name}", DecoderLogits(model), (ids,), {}, dynamic=dynamic), config


def step_export(a) -> dict:
    import torch  # noqa: F401  (imports before the baseline)
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig  # noqa: F401  (transformers imports lazily)

    import pt2kit
    import pt2kit.export.program  # noqa: F401

    base = current_rss()
    with PeakRss() as rss:
        start = time.perf_counter()
        target, config = make_target(a.model, a.device, a.dtype)
        made = time.perf_counter()
        params = sum(p.numel() for p in target.module.parameters())
        result = pt2kit.export_program(target, a.program, value_ranges={"input_ids": (0, config.vocab_size)})
        done = time.perf_counter()
    return {"params": params, "weights_bytes": unique_bytes(target.module), "manifest_weights_bytes": result.manifest.parameter_bytes,
            "make_s": made - start, "export_s": done - made, "program_bytes": Path(a.program).stat().st_size, **rss_figures(rss, base)}


def step_export_build(a) -> dict:
    """Export and build in one process, without the `.pt2` round trip (saves minutes of GPU time for the 3B model).

    The export row is written to results.jsonl at once (a build killed by a time limit keeps it); each phase
    has its own RSS sampler, so the build's peak is its own.
    """
    import torch  # noqa: F401
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig  # noqa: F401

    import pt2kit
    import pt2kit.compile.build  # noqa: F401
    import pt2kit.export.program  # noqa: F401

    base = current_rss()
    with PeakRss() as rss:
        start = time.perf_counter()
        target, config = make_target(a.model, a.device, a.dtype)
        made = time.perf_counter()
        result = pt2kit.export_program(target, None, value_ranges={"input_ids": (0, config.vocab_size)})
        done = time.perf_counter()
    row = {"params": sum(p.numel() for p in target.module.parameters()), "weights_bytes": unique_bytes(target.module),
           "make_s": made - start, "export_s": done - made, "one_process": True, "rss_peak": rss.self_peak, "rss_base": base,
           "rss_over_base": rss.self_peak - base, "model": a.model, "step": "export"}
    with open(Path(a.package).parent / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), file=sys.stderr, flush=True)
    base = current_rss()
    with PeakRss() as rss, CompilerTimer() as compilers:
        built = pt2kit.compile_package(result.program, a.package, device=a.device, dtype=a.dtype, use_cache=False,
                                       external_weights=a.external_weights)
    return {"build_s": built.seconds, "aoti_s": built.build_seconds, "package_bytes": built.size_bytes, "phases_s": inductor_phases(),
            "external_weights": built.external_weights, **compilers.summary(), "one_process": True, "rss_peak": rss.self_peak,
            "rss_base": base, "rss_over_base": rss.self_peak - base, "rss_tree_peak": rss.tree_peak}


def inductor_phases(top: int = 12) -> dict:
    """Inductor's own timers (`dynamo_timed` sections, nested: they overlap), the longest first."""
    try:
        from torch._dynamo.utils import compilation_time_metrics
    except ImportError:
        return {}
    totals = {name: round(sum(times), 2) for name, times in compilation_time_metrics.items()}
    return dict(sorted(totals.items(), key=lambda kv: -kv[1])[:top])


def step_build(a) -> dict:
    import torch._inductor  # noqa: F401  (imports before the baseline)

    import pt2kit
    import pt2kit.compile.build  # noqa: F401

    base = current_rss()
    with PeakRss() as rss, CompilerTimer() as compilers:
        result = pt2kit.compile_package(a.program, a.package, device=a.device, dtype=a.dtype, use_cache=False,
                                        external_weights=a.external_weights)
    return {"build_s": result.seconds, "aoti_s": result.build_seconds, "package_bytes": result.size_bytes,
            "phases_s": inductor_phases(),
            "external_weights": result.external_weights, "manifest_weights_bytes": result.weights_bytes, **compilers.summary(),
            **rss_figures(rss, base)}


def step_load(a) -> dict:
    import torch

    cuda = a.device == "cuda"
    if cuda:
        torch.cuda.init()
        free_before = torch.cuda.mem_get_info()[0]
    ids = torch.randint(0, 1000, (1, 128), device=a.device)
    if a.cold:
        evict(a.package)
    if a.how == "plain":
        import torch._inductor.package  # noqa: F401  (its own import, outside the clock as cold_start.py does)
    else:
        import pt2kit
        import pt2kit.runtime.loaded  # noqa: F401
    import zipfile

    per_tensor = any("/data/weights/" in n for n in zipfile.ZipFile(a.package).namelist())
    base = current_rss()
    with PeakRss() as rss:
        start = time.perf_counter()
        if a.how == "plain" and per_tensor:  # the plain-torch way for per-tensor weights (aoti_load_package omits them)
            from torch.export.pt2_archive._package import load_pt2

            model = load_pt2(a.package, load_weights_from_disk=True).aoti_runners["model"]
        elif a.how == "plain":
            model = torch._inductor.aoti_load_package(a.package)
        else:
            model = pt2kit.load(a.package)
        loaded = time.perf_counter()
        model(ids)
        if cuda:
            torch.cuda.synchronize()
        done = time.perf_counter()
    out = {"how": a.how + ("-cold" if a.cold else ""), "load_s": loaded - start, "first_call_s": done - loaded, **rss_figures(rss, base),
           "rss_held_after_call": current_rss() - base}  # what stays: the weights' host copy, if any
    if cuda:
        out["gpu_used_after_load"] = free_before - torch.cuda.mem_get_info()[0]
    if a.how == "pt2kit" and a.verify:  # the same loaded package, after its memory was measured
        out.update(verify(a, model))
    return out


def evict(path: str) -> None:
    """Drop the file's pages from the page cache (no root needed for clean pages), for a cold-cache load."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def verify(a, model) -> dict:
    """`pt2kit verify` of the package against the `.pt2` program it was built from: example, min and max sizes."""
    import pt2kit
    from pt2kit.verify.outputs import program_target

    start = time.perf_counter()
    report = pt2kit.verify_outputs(program_target(a.program), model, samples=2)
    print(report, file=sys.stderr)
    return {"verify_s": time.perf_counter() - start, "verify_ok": report.ok, "verify_cases": len(report.cases),
            "verify_summary": report.summary(), "max_abs_err": max((o.max_abs_err for o in report.outputs), default=None)}


def step_tune(a) -> dict:
    """`pt2kit tune` of the `.pt2` on its device, one recipe: the package with and without CUDA graph replay.

    A `.pt2` already in bf16 gives one build; tune then times it plainly and with CUDA graphs (on CUDA) and keeps
    the faster one that passes the float32-eager gate at `--atol`/`--rtol` (random weights make logits of order 1;
    the tolerance is the bf16 rounding the issue accepts, recorded with the result).
    """
    out = Path(a.package).with_suffix(".tuned.pt2")
    cmd = [sys.executable, "-m", "pt2kit", "tune", a.program, "-o", str(out), "--device", a.device, "--dtypes", a.dtype,
           "--recipes", "default", "--samples", "1", "--iters", "10", "--atol", "0.1", "--rtol", "0.05", "--no-cache", "--json"]
    start = time.perf_counter()
    with PeakRss() as rss:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
    row = {"tune_s": time.perf_counter() - start, "tune_exit": proc.returncode, "rss_tree_peak": rss.tree_peak}
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {**row, "error": f"tune printed no JSON (exit {proc.returncode})"}
    row["tune_chosen"] = report.get("chosen")
    row["tune_candidates"] = [{k: c.get(k) for k in ("name", "status", "p50_ms", "max_abs_err", "build_s", "reason")}
                              for c in report.get("candidates", [])]
    out.unlink(missing_ok=True)
    return row


def step_serve(a) -> dict:
    """`pt2kit serve PACKAGE` in its own process: time to ready, then one request per sequence-length bucket.

    Each request is OIP v2 JSON in (`input_ids`, batch 1) with the logits asked back as binary data; the
    latency is the client's round trip, p50 of 3 after one warm-up per length.
    """
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "pt2kit", "serve", a.package, "--device", a.device, "--port", str(port),
           "--max-batch-size", "1", "-q"]
    start = time.perf_counter()
    server = subprocess.Popen(cmd, stdout=sys.stderr, stderr=sys.stderr)
    try:
        while True:
            if server.poll() is not None:
                return {"error": f"the server exited {server.returncode} before it was ready"}
            try:
                with urllib.request.urlopen(url + "/v2/health/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - start > 300:  # loaded but never ready: its warm-up failed (the log says why)
                return {"error": "the server was not ready in 300 s"}
            time.sleep(0.2)
        ready_s = time.perf_counter() - start
        with urllib.request.urlopen(url + "/v2/models/stats") as r:
            name = json.load(r)["model_stats"][0]["name"]
        with urllib.request.urlopen(f"{url}/v2/models/{name}") as r:
            meta = json.load(r)
        latencies = {}
        for length in (SEQ[0], 16, 128, 512, SEQ[1]):
            body = json.dumps({"inputs": [{"name": meta["inputs"][0]["name"], "shape": [1, length], "datatype": "INT64",
                                           "data": [(7 * i) % 1000 for i in range(length)]}],
                               "outputs": [{"name": o["name"], "parameters": {"binary_data": True}} for o in meta["outputs"]]}).encode()
            times = []
            for _ in range(4):
                t0 = time.perf_counter()
                req = urllib.request.Request(f"{url}/v2/models/{name}/infer", data=body, headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=120) as r:
                    payload = r.read()
                    if r.status != 200:
                        return {"error": f"seq {length}: HTTP {r.status}"}
                times.append(time.perf_counter() - t0)
            latencies[str(length)] = {"p50_ms": round(sorted(times[1:])[1] * 1e3, 2), "response_bytes": len(payload)}
        return {"serve_ready_s": ready_s, "serve_latency": latencies}
    finally:
        server.terminate()
        server.wait(timeout=120)


STEPS = {"export": step_export, "build": step_build, "load": step_load, "export_build": step_export_build,
         "tune": step_tune, "serve": step_serve}


# ---------------------------------------------------------------- the driver

def child(step: str, model: str, a, **extra) -> dict:
    folder = Path(a.out)
    args = [sys.executable, __file__, "--step", step, "--model", model, "--device", a.device, "--dtype", a.dtype,
            "--external-weights", a.external_weights,
            "--program", str(folder / f"{model}.pt2"), "--package", str(folder / f"{model}.aoti.pt2")]
    for key, value in extra.items():
        args += [f"--{key}", str(value)]
    wall = time.perf_counter()
    with open(folder / f"{model}.{step}{'.' + extra['how'] if 'how' in extra else ''}{'.cold' if extra.get('cold') else ''}.log", "w") as log:
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    row = json.loads(lines[-1]) if proc.returncode == 0 and lines else {"error": f"exit {proc.returncode}, see {log.name}"}
    row.update(model=model, step=step, process_wall_s=time.perf_counter() - wall)
    with open(folder / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    return row


def gb(n) -> str:
    return f"{n / 1e9:.2f}" if isinstance(n, (int, float)) else "-"


def table(rows: list[dict]) -> str:
    by = {}
    for r in rows:
        step = "build" if r["step"] == "export_build" else r["step"]
        by.setdefault(r["model"], {})[step + ("." + r["how"] if "how" in r else "")] = r
    head = ("| model | params | weights GB | export s | export RSS GB (over base) | build s | compiler s (longest) | build RSS GB (over base; tree) "
            "| package GB (.so external?) | load s plain / pt2kit | first call s | load RSS GB (over base) | GPU GB after load | verify |")
    out = [head, "|" + " --- |" * (head.count("|") - 1)]
    for model, s in by.items():
        e, b = s.get("export", {}), s.get("build", {})
        lp, lk = s.get("load.plain", {}), s.get("load.pt2kit", {})
        v = lk
        w = e.get("weights_bytes")
        out.append(
            f"| {model} | {e.get('params', 0) / 1e9:.2f}B | {gb(w)} | {e.get('export_s', 0):.1f} | {gb(e.get('rss_peak'))} ({gb(e.get('rss_over_base'))}) | "
            f"{b.get('build_s', 0):.1f} | {b.get('compiler_s', 0):.1f} ({b.get('longest_compiler_s', 0):.1f} "
            f"{b.get('longest_compiler_call', '')}) | {gb(b.get('rss_peak'))} ({gb(b.get('rss_over_base'))}; {gb(b.get('rss_tree_peak'))}) | "
            f"{gb(b.get('package_bytes'))} ({'external' if b.get('external_weights') else 'in .so'}) | "
            f"{lp.get('load_s', 0):.2f} / {lk.get('load_s', 0):.2f} | {lk.get('first_call_s', 0):.2f} | "
            f"{gb(lp.get('rss_peak'))} / {gb(lk.get('rss_peak'))} ({gb(lp.get('rss_over_base'))} / {gb(lk.get('rss_over_base'))}) | {gb(lk.get('gpu_used_after_load'))} | "
            f"{'ok' if v.get('verify_ok') else v.get('verify_summary', '-')} {v.get('max_abs_err') or ''} |")
    extra = [r for r in rows if r["step"] in ("tune", "serve") and "error" not in r]
    if extra:
        out += ["", "| model | step | result |", "| --- | --- | --- |"]
        for r in extra:
            if r["step"] == "tune":
                cands = "; ".join(f"{c['name']} {c['status']} {c['p50_ms']} ms err {c['max_abs_err']:.3g}" if c.get("max_abs_err") is not None
                                  else f"{c['name']} {c['status']}" for c in r["tune_candidates"])
                out.append(f"| {r['model']} | tune {r['tune_s']:.0f} s | chosen {r['tune_chosen']}: {cands} |")
            else:
                lat = ", ".join(f"seq {k}: {v['p50_ms']} ms" for k, v in r["serve_latency"].items())
                out.append(f"| {r['model']} | serve, ready in {r['serve_ready_s']:.1f} s | {lat} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="gpt2,llama-1.1b", help=f"comma-separated, from {', '.join(MODELS)}")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    p.add_argument("--steps", default="export,build,load,verify", help="verify runs inside the pt2kit load step")
    p.add_argument("--out", default="/tmp/large_models")
    p.add_argument("--external-weights", choices=["auto", "on", "tensors", "off"], default="auto", help="passed to compile_package")
    p.add_argument("--keep", action="store_true", help="keep each model's .pt2 and package (default: delete when done)")
    p.add_argument("--step", choices=list(STEPS), help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--program", help=argparse.SUPPRESS)
    p.add_argument("--package", help=argparse.SUPPRESS)
    p.add_argument("--how", choices=["plain", "pt2kit"], help=argparse.SUPPRESS)
    p.add_argument("--cold", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--verify", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.step:  # a child: one step, one JSON line on stdout
        print(json.dumps(STEPS[a.step](a)), flush=True)
        return
    Path(a.out).mkdir(parents=True, exist_ok=True)
    steps, rows = a.steps.split(","), []
    for model in a.models.split(","):
        if model not in MODELS:
            raise SystemExit(f"unknown model `{model}`; choose from {', '.join(MODELS)}")
        for step in steps:
            if step == "verify":
                continue
            if step == "export_build":  # one process; the export row is written by the child
                rows.append(child("export_build", model, a))
                if "error" in rows[-1]:
                    break
                continue
            if step == "load":
                rows += [child("load", model, a, how="plain"), child("load", model, a, how="pt2kit", verify=int("verify" in steps))]
            elif step == "coldload":  # each load after the package's pages are dropped from the page cache
                rows += [child("load", model, a, how="plain", cold=1), child("load", model, a, how="pt2kit", cold=1)]
            else:
                rows.append(child(step, model, a))
            if "error" in rows[-1]:
                break
        if not a.keep:
            for suffix in (".pt2", ".aoti.pt2"):
                Path(a.out, model + suffix).unlink(missing_ok=True)
    print(table([json.loads(line) for line in open(Path(a.out) / "results.jsonl")]))


if __name__ == "__main__":
    main()
