"""Quantized AOTInductor packages against float32/bf16 ones and ONNX Runtime (issue 25), side by side in one run.

    python benchmarks/tune/quantize.py --device cpu --out benchmarks/quantize_cpu.log      # BERT-small 4x128, MLP; 1 and 2 threads
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libstdc++.so.6 python3 benchmarks/tune/quantize.py --device cuda --out quantize_gpu.log

CPU, per model and thread count (torch and ONNX Runtime at the same count; Inductor bakes the count into its C++
kernels, so each package is built at that count): the float32 package `pt2kit tune --dtypes fp32 --threads N`
writes (it builds every CPU recipe, `default`, `cpu-freeze`, `cpu-gemm`, and keeps the fastest; the row names
its choice), the `--quantize int8-dynamic` and `--quantize int8-static` packages (`cpu-freeze`, the recipe tune
builds int8 with; int8-static is calibrated on the example input, the one the error column uses:
benchmarks/tune/int8_error.py gives its error on other inputs), ONNX Runtime fp32 (TorchScript-based
`torch.onnx.export`) and ONNX Runtime `quantize_dynamic` int8 (QInt8 weights), timed side by side in this process,
in blocks of 5 calls round-robin (p50 of `--iters` calls; blocks because an ONNX Runtime or OpenMP pool spins for a
while after each run), with the median process CPU time per call beside the wall time (at one thread the runtime
computes on the calling thread, so it leaves out the time another process held the core). Each error is the
largest |output - float32 eager|.
The load average and the share of the cores other processes used while the rows were timed are logged with them:
on a shared 2-core machine the 2-thread rows measure that load more than the code (benchmarks/tune/omp_wait.py).

CUDA (bf16 base, every package loaded by `pt2kit.load` with CUDA graph replay; CUDA events): BERT-base 16x128 and a
2048-wide MLP stack, the bf16 package against the quantized ones; ResNet-50 b32 bf16 channels_last with and without
Inductor freezing. Every package is also loaded once by plain `aoti_load_package` and must give the same outputs.
Nothing is downloaded: every model is built from a config with random weights.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import pt2kit  # noqa: E402
from bench_models import HiddenStates  # noqa: E402
from pt2kit.benchmark.timing import Timer, interleaved, percentile  # noqa: E402
from pt2kit.compile import compile_package  # noqa: E402
from pt2kit.target.resolve import Target  # noqa: E402


def bert_small(batch: int = 4, tokens: int = 128) -> Target:
    """BERT-small (4 layers, width 512, 8 heads), random weights."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048)
    return Target("benchmarks/tune/quantize.py:bert_small", HiddenStates(BertModel(config)).eval(), (torch.randint(0, 30522, (batch, tokens)),))


def bert_base(batch: int = 16, tokens: int = 128) -> Target:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return Target("benchmarks/tune/quantize.py:bert_base", HiddenStates(BertModel(BertConfig())).eval(), (torch.randint(0, 30522, (batch, tokens)),))


def mlp(batch: int = 64, width: int = 1024, depth: int = 3) -> Target:
    """`depth` blocks of Linear(width, 4*width) -> GELU -> Linear(4*width, width)."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)]
    return Target("benchmarks/tune/quantize.py:mlp", nn.Sequential(*layers).eval(), (torch.randn(batch, width),))


def resnet50(batch: int = 32) -> Target:
    from bench_models import resnet50 as make

    return make(batch)


def eager_fp32(target: Target, device: str):
    import copy

    model = copy.deepcopy(target.module).to(device).float().eval()
    args = tuple(a.to(device) for a in target.args)
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    with torch.no_grad():
        out = model(*args)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    return args, out.float()


def err(a, b) -> float:
    a = a[0] if isinstance(a, (list, tuple)) else a
    return float((torch.as_tensor(a).float().to(b.device) - b).abs().max())


def time_all(calls: dict, device: str, iters: int, warmup: int = 3, block: int = 5,
             cpu_ms: dict[str, float] | None = None) -> dict[str, float]:
    """p50 ms of each call, timed side by side in blocks: `block` timed calls of one, then the next, round-robin.

    Blocks, not single calls: on CPU an ONNX Runtime session's pool threads spin for a while after each run (and
    OpenMP's do too, libgomp up to 300000 spins), so a call timed right after another runtime's shares the cores
    with its spinning threads. On CPU each block starts with a 50 ms pause, long enough for both pools' spinning
    to end, then two untimed calls.

    `cpu_ms`, when given, receives each call's median over blocks of the process CPU time per call (all its
    threads): at one thread a measure that time spent waiting for a core another process holds does not inflate.
    """
    timer = Timer(device)
    samples: dict[str, list[float]] = {k: [] for k in calls}
    cpu: dict[str, list[float]] = {k: [] for k in calls}
    with torch.no_grad():
        interleaved(timer, calls, warmup)
        for _ in range(max(1, iters // block)):
            for name, call in calls.items():
                if device == "cpu":
                    time.sleep(0.05)
                interleaved(timer, {name: call}, 2)
                start = time.process_time()
                samples[name] += interleaved(timer, {name: call}, block)[name]
                cpu[name].append((time.process_time() - start) * 1e3 / block)
    if cpu_ms is not None:
        cpu_ms.update({k: percentile(v, 50) for k, v in cpu.items()})
    return {k: percentile(v, 50) for k, v in samples.items()}


def cpu_rows(title: str, make, threads: tuple[int, ...], iters: int, tmp: Path, log) -> list[str]:
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = make()
    args, expected = eager_fp32(target, "cpu")
    program = tmp / f"{make.__name__}.pt2"
    pt2kit.export_program(target, program, check_specialization=False)
    onnx_path, onnx_q = tmp / f"{make.__name__}.onnx", tmp / f"{make.__name__}.int8.onnx"
    torch.onnx.export(target.module, args, str(onnx_path), dynamo=False, input_names=["x"])
    quantize_dynamic(str(onnx_path), str(onnx_q), weight_type=QuantType.QInt8)
    rows = []
    for n in threads:
        torch.set_num_threads(n)
        calls, errors = {}, {}
        tuned = tmp / f"{make.__name__}-fp32-t{n}.tuned.pt2"
        start = time.perf_counter()
        report = pt2kit.tune_model(program, tuned, dtypes="fp32", threads=(n,), iters=max(10, iters // 2))
        fp32 = f"fp32 package (tune chose `{report.chosen.removesuffix(f'-t{n}')}`)"
        log(f"  tuned fp32 t{n} in {time.perf_counter() - start:.1f}s: "
            + ", ".join(f"{c.candidate.name} {c.p50_ms:.2f} ms" for c in report.candidates if c.p50_ms is not None))
        for label, quantize in ((fp32, None), ("int8-dynamic package", "int8-dynamic"), ("int8-static package", "int8-static")):
            out = tuned
            if quantize:
                out = tmp / f"{make.__name__}-{quantize}-t{n}.aoti.pt2"
                start = time.perf_counter()
                compile_package(program, out, preset="cpu-freeze", quantize=quantize, inductor_configs={"cpp.threads": n})
                log(f"  built {label} t{n} in {time.perf_counter() - start:.1f}s")
            model = pt2kit.load(out, threads=n)
            errors[label] = err(model(*args), expected)
            raw = torch._inductor.aoti_load_package(str(out))
            assert err(raw(*args), expected) == errors[label], "plain aoti_load_package gives other outputs"
            calls[label] = (lambda m: lambda: m(*args))(model)
        for label, path in (("ONNX Runtime fp32", onnx_path), ("ONNX Runtime quantize_dynamic int8", onnx_q)):
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = n, 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            feed = {"x": args[0].numpy()}
            errors[label] = err(torch.from_numpy(session.run(None, feed)[0]), expected)
            calls[label] = (lambda s, f: lambda: s.run(None, f))(session, feed)
        busy, cpu_ms = BusyCores(), {}
        p50 = time_all(calls, "cpu", iters, cpu_ms=cpu_ms)
        log(f"  {title}, {n} thread(s): load average {os.getloadavg()[0]:.1f}, {busy.others():.2f} cores busy with other processes")
        base = p50[fp32]
        for label in calls:
            rows.append(f"| {title} | {n} | {label} | {p50[label]:.2f} | {base / p50[label]:.2f}x | {errors[label]:.3g} | {cpu_ms[label]:.2f} |")
            log(rows[-1])
    return rows


class BusyCores:
    """How many cores other processes kept busy since construction: all busy time (/proc/stat) minus this process's."""

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
        mine = os.times()
        return busy / os.sysconf("SC_CLK_TCK"), mine.user + mine.system, time.monotonic()

    def others(self) -> float:
        busy, mine, now = self._sample()
        return max(0.0, (busy - self.start[0]) - (mine - self.start[1])) / (now - self.start[2])


def cuda_rows(title: str, make, variants: list[tuple[str, dict]], iters: int, tmp: Path, log, deadline: float) -> list[str]:
    target = make()
    args, expected = eager_fp32(target, "cuda")
    program = tmp / f"{make.__name__}.pt2"
    pt2kit.export_program(target, program, check_specialization=False)
    calls, errors, notes = {}, {}, []
    for label, options in variants:
        if time.perf_counter() > deadline:
            notes.append(f"{label}: not built (the run's time budget was spent)")
            continue
        source = program
        if options.pop("channels_last", False):
            from pt2kit.artifact.package import load_program, read_manifest, save_program
            from pt2kit.tune.layout import to_channels_last

            source = tmp / f"{make.__name__}-cl.pt2"
            if not source.exists():
                save_program(*to_channels_last(load_program(program), read_manifest(program)), source)
        out = tmp / f"{make.__name__}-{len(calls)}.aoti.pt2"
        start = time.perf_counter()
        try:
            compile_package(source, out, device="cuda", **options)
        except Exception as exc:  # one scheme that cannot build must not stop the others
            notes.append(f"{label}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
            log(notes[-1])
            continue
        log(f"  built {label} in {time.perf_counter() - start:.1f}s")
        model = pt2kit.load(out, cuda_graphs=True)
        with torch.no_grad():
            errors[label] = err(model(*args), expected)
            raw = torch._inductor.aoti_load_package(str(out))
            raw_err = err(raw(*args), expected)
        if abs(raw_err - errors[label]) > 1e-3 * max(1.0, errors[label]):
            notes.append(f"{label}: plain aoti_load_package error {raw_err:.3g} differs from pt2kit.load's")
        calls[label] = (lambda m: lambda: m(*args))(model)
    p50 = time_all(calls, "cuda", iters) if calls else {}
    base = next(iter(p50.values()), None)
    rows = [f"| {title} | {label} | {p50[label]:.3f} | {base / p50[label]:.2f}x | {errors[label]:.3g} |" for label in calls]
    for row in rows:
        log(row)
    return rows + [f"| {title} | {n} | | | |" for n in notes]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--budget", type=float, default=420.0, help="CUDA: no new build after this many seconds")
    parser.add_argument("--only", help="run only models whose title contains this")
    parser.add_argument("--mlp-batch", type=int, default=256, help="CUDA: the MLP stack's batch (fp8 pays off only where GEMMs are large)")
    parser.add_argument("--out", help="append the log and the table to this file")
    args = parser.parse_args()
    logging.getLogger("torchao").setLevel(logging.ERROR)
    sink = open(args.out, "a") if args.out else None

    def log(text: str) -> None:
        print(text, flush=True)
        if sink:
            sink.write(text + "\n")
            sink.flush()

    from pt2kit.benchmark.harness import machine_info
    from pt2kit.compile.quantize import torchao_version

    log(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch {torch.__version__}, torchao {torchao_version()}, "
        f"{machine_info(args.device)}, load {os.getloadavg()[0]:.1f}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if args.device == "cpu":
            threads = tuple(int(t) for t in args.threads.split(","))
            rows = ["| model | threads | build | p50 ms | speed-up vs fp32 package | max abs err vs fp32 eager | CPU ms per call |",
                    "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
            for title, make in (("MLP 1024-4096 x3, batch 64", mlp), ("BERT-small (L4 H512), 4x128", bert_small)):
                if not args.only or args.only in title:
                    rows += cpu_rows(title, make, threads, args.iters, tmp, log)
        else:
            deadline = start + args.budget
            bf16 = {"dtype": "bf16"}
            rows = ["| model | build | p50 ms | speed-up vs first | max abs err vs fp32 eager |", "| --- | --- | ---: | ---: | ---: |"]
            cases = [  # most wanted first: the run's budget cuts from the end
                ("BERT-base 16x128", bert_base, [("bf16", dict(bf16)), ("fp8-dynamic", {"quantize": "fp8-dynamic"})]),
                (f"MLP 2048-8192 x3, batch {args.mlp_batch}", lambda: mlp(args.mlp_batch, 2048), [
                    ("bf16", dict(bf16)), ("fp8-dynamic", {"quantize": "fp8-dynamic"}), ("int8-dynamic", {"quantize": "int8-dynamic"}),
                    ("int8-weight-only", {"quantize": "int8-weight-only"}), ("int4-weight-only", {"quantize": "int4-weight-only"})]),
                ("ResNet-50 b32", resnet50, [("bf16 channels_last + freezing", {**bf16, "channels_last": True,
                                                                                "inductor_configs": {"freezing": True}}),
                                             ("bf16 channels_last", {**bf16, "channels_last": True})]),
            ]
            for title, make, variants in cases:
                if not args.only or args.only in title:
                    try:
                        rows += cuda_rows(title, make, variants, args.iters, tmp, log, deadline)
                    except Exception as exc:  # one model that fails must not cost the others' figures
                        log(f"{title}: {type(exc).__name__}: {' '.join(str(exc).split())[:400]}")
                        rows.append(f"| {title} | failed: {type(exc).__name__} | | | |")
    log("\n".join(rows))
    log(f"total {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
