"""`pt2kit tune` on CPU against ONNX Runtime at the same thread count, and the default artifact against plain AOTI.

    python benchmarks/tune/tune_cpu.py                       # writes benchmarks/tune/tune_cpu.md (benchmarks/tune/tune.md summarises it)
    python benchmarks/tune/tune_cpu.py --threads 1 --iters 30

For each model: `pt2kit.tune_model` (recipes default, cpu-freeze, cpu-gemm; fp32 and bf16; tolerance against
float32 eager as given), then ONE `pt2kit.bench` run that times, interleaved in one process: eager, the default
artifact through `pt2kit.load` (`aoti`), the same package through plain `aoti_load_package` (`aoti-raw`),
ONNX Runtime, and the tuned artifact (`artifact`). torch and ONNX Runtime use the same thread count.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: bench_models, common

import torch  # noqa: E402
from torch import nn  # noqa: E402

import pt2kit  # noqa: E402
from bench_models import HiddenStates, cnn, markdown_table  # noqa: E402
from common import cpu_model, utc_now  # noqa: E402
from pt2kit.target.resolve import Target  # noqa: E402
from pt2kit.tune import tune_model  # noqa: E402


def mlp_4096(batch: int = 32) -> Target:
    """The issue's MLP: 1024-4096-4096-1024, GELU between, batch 32."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1024, 4096), nn.GELU(), nn.Linear(4096, 4096), nn.GELU(), nn.Linear(4096, 1024)).eval()
    return Target("benchmarks/tune/tune_cpu.py:mlp_4096", model, (torch.randn(batch, 1024),))


def bert_small(batch: int = 1, tokens: int = 128) -> Target:
    """BERT-small (4 layers, width 512, 8 heads: the L-4 H-512 shape), random weights, token ids in [0, 30522)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048)
    ids = torch.randint(0, 30522, (batch, tokens))
    return Target("benchmarks/tune/tune_cpu.py:bert_small", HiddenStates(BertModel(config)).eval(), (ids,))


CASES = [
    ("MLP 1024-4096-4096-1024, batch 32", mlp_4096),
    ("Small CNN (3 conv blocks, 3x32x32), batch 32", lambda: cnn(32)),
    ("BERT-small (L4 H512), batch 1 x 128 tokens", bert_small),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--atol", type=float, default=1e-3)
    parser.add_argument("--rtol", type=float, default=1e-3)
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--recipes", default="default,cpu-freeze,cpu-gemm")
    parser.add_argument("--only", help="run only cases whose title contains this")
    parser.add_argument("--out", default=str(Path(__file__).with_name("tune_cpu.md")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # before the builds: Inductor bakes the thread count into C++ kernels
    sections = []
    for title, make in CASES:
        if args.only and args.only not in title:
            continue
        load_before = os.getloadavg()
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            report = tune_model(make(), Path(tmp) / "tuned.pt2", device="cpu", atol=args.atol, rtol=args.rtol, dtypes=args.dtypes,
                                recipes=args.recipes, iters=args.iters, warmup=args.warmup)
            print(report, flush=True)
            tune_s = time.perf_counter() - start
            bench = pt2kit.bench(make(), modes="eager,aoti,onnxruntime", artifact=report.output, threads=args.threads,
                                 warmup=args.warmup, iters=args.iters) if report.output else None
        print(bench, flush=True)
        lines = [f"## {title}", "", f"`pt2kit tune` ({tune_s:.0f}s; load average before: {load_before[0]:.1f}):", "", "```",
                 str(report), "```", ""]
        if bench is not None:
            lines += ["One `pt2kit.bench` run, every mode interleaved:", "", markdown_table(bench), ""]
            rows = {r.mode.value: r for r in bench.rows}
            tuned, ort, aoti, raw = (rows.get(m) for m in ("artifact", "onnxruntime", "aoti", "aoti-raw"))
            if tuned and ort:
                verdict = "met" if tuned.p50_ms <= ort.p50_ms else f"missed by {tuned.p50_ms / ort.p50_ms - 1:.0%}"
                lines.append(f"- goal tuned <= ONNX Runtime: {tuned.p50_ms:.3f} vs {ort.p50_ms:.3f} ms p50: **{verdict}** "
                             f"(tuned is {ort.p50_ms / tuned.p50_ms:.2f}x ONNX Runtime's speed)")
            if aoti and raw:
                verdict = "met" if aoti.p50_ms <= raw.p50_ms * 1.02 else f"missed by {aoti.p50_ms / raw.p50_ms - 1:.1%}"
                lines.append(f"- goal default artifact (`aoti`, pt2kit.load) not slower than plain AOTI (`aoti-raw`): "
                             f"{aoti.p50_ms:.3f} vs {raw.p50_ms:.3f} ms: **{verdict}** (2% noise allowance)")
            lines.append("")
        sections.append("\n".join(lines))
    cpu = cpu_model()
    header = (f"# pt2kit tune on CPU\n\nRecorded by `python benchmarks/tune/tune_cpu.py --threads {args.threads} --iters {args.iters} "
              f"--atol {args.atol} --rtol {args.rtol} --dtypes {args.dtypes} --recipes {args.recipes}` on {cpu} "
              f"({os.cpu_count()} cores, shared with other jobs), torch {torch.__version__}, "
              f"{utc_now()}.\n")
    Path(args.out).write_text(header + "\n" + "\n".join(sections))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
