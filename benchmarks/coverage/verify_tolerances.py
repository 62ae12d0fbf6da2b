"""Measure how far AOTInductor's outputs drift from eager, to choose `pt2kit verify`'s default tolerances.

For each model: export with a dynamic batch, compile with AOTInductor for the device, then run eager and the
package on several random inputs (batch 1, the example, the max) and record the largest absolute and relative
error of every output, and the smallest `atol` such that `|a - e| <= atol + rtol * |e|` holds at a few `rtol`s.

    python benchmarks/coverage/verify_tolerances.py [--device cuda] [--dtype float32|bfloat16|float16] [--tf32]

Results are recorded in benchmarks/coverage/verify_tolerances.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import torch
from torch import nn
from torch.export import Dim

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: common
from common import cpu_model  # noqa: E402


def models():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 256), nn.LayerNorm(256), nn.Linear(256, 10))
    yield "mlp", mlp, (torch.randn(8, 64),), {"x": {0: Dim("batch", min=1, max=32)}}, None

    cnn = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.SiLU(),
        nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10), nn.Softmax(-1),
    )
    for m in cnn.modules():  # non-trivial batchnorm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2)
    yield "cnn", cnn, (torch.randn(4, 3, 32, 32),), {"x": {0: Dim("batch", min=1, max=16)}}, None

    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

    bert = BertModel(BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=256, max_position_embeddings=128))
    ids = torch.randint(0, 1000, (2, 32))
    yield "bert-tiny", bert, (ids,), {"input_ids": {0: Dim("batch", min=1, max=8)}}, (0, 1000)

    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=1000, n_embd=128, n_layer=2, n_head=4, n_positions=128))
    yield "gpt2-tiny", gpt, (ids,), {"input_ids": {0: Dim("batch", min=1, max=8)}}, (0, 1000)

    # BERT-base sized (12 layers, hidden 768), smaller vocabulary: how the drift grows with depth and width
    base = BertModel(BertConfig(vocab_size=4000, max_position_embeddings=128))
    yield "bert-base-size", base, (torch.randint(0, 4000, (2, 64)),), {"input_ids": {0: Dim("batch", min=1, max=4)}}, (0, 4000)


class Wrap(nn.Module):
    """Call with one positional input named `x` or `input_ids`, return the outputs as a dict of tensors."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        if isinstance(out, torch.Tensor):
            return {"output": out}
        return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


def errors(expected: torch.Tensor, actual: torch.Tensor) -> dict:
    e, a = expected.double(), actual.double()
    diff = (a - e).abs()
    nonzero = e.abs() > 0
    rel = (diff[nonzero] / e.abs()[nonzero]).max().item() if nonzero.any() else 0.0
    need = {}
    for rtol in (1e-4, 1e-3, 1e-2, 5e-2):
        need[f"atol@rtol={rtol:g}"] = max(0.0, (diff - rtol * e.abs()).max().item())
    return {"max_abs": diff.max().item(), "max_rel": rel, **need}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--tf32", action="store_true")
    parser.add_argument("--only", nargs="*")
    opts = parser.parse_args()
    dtype = getattr(torch, opts.dtype)
    # TF32 off unless asked: cuDNN allows it for convolutions by default, which would blur the float32 rows
    torch.backends.cudnn.allow_tf32 = opts.tf32
    torch.set_float32_matmul_precision("high" if opts.tf32 else "highest")
    rows = []
    for name, model, args, dyn, int_range in models():
        if opts.only and name not in opts.only:
            continue
        model = Wrap(model).eval().to(opts.device)
        if dtype != torch.float32:
            model = model.to(dtype)
        args = tuple(a.to(opts.device).to(dtype) if a.is_floating_point() else a.to(opts.device) for a in args)
        dyn = {"x": next(iter(dyn.values()))}
        start = time.perf_counter()
        with torch.no_grad():
            ep = torch.export.export(model, args, dynamic_shapes=dyn)
            with tempfile.TemporaryDirectory() as tmp:
                pkg = torch._inductor.aoti_compile_and_package(ep, package_path=os.path.join(tmp, "m.pt2"))
                compiled = torch._inductor.aoti_load_package(pkg)
                seconds = time.perf_counter() - start
                worst: dict[str, dict] = {}
                gen = torch.Generator().manual_seed(1)
                for batch in (1, args[0].shape[0], dyn["x"][0].max):
                    shape = (batch, *args[0].shape[1:])
                    if int_range:
                        x = torch.randint(*int_range, shape, generator=gen)
                    else:
                        x = torch.randn(shape, generator=gen)
                    x = x.to(opts.device).to(args[0].dtype)
                    expected, actual = model(x.clone()), compiled(x.clone())
                    for key in expected:
                        err = errors(expected[key], actual[key])
                        prev = worst.setdefault(key, err)
                        worst[key] = {k: max(prev[k], err[k]) for k in err}
        for key, err in worst.items():
            rows.append({"model": name, "output": key, "compile_s": round(seconds, 1), **err})
            print(json.dumps(rows[-1]), file=sys.stderr)
    header = f"device {opts.device} ({torch.cuda.get_device_name() if opts.device == 'cuda' else cpu_model()}), " \
             f"dtype {opts.dtype}, tf32 {opts.tf32}, torch {torch.__version__}"
    print(header)
    cols = ["model", "output", "max_abs", "max_rel", "atol@rtol=0.0001", "atol@rtol=0.001", "atol@rtol=0.01", "atol@rtol=0.05", "compile_s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + " --- |" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.2e}" if isinstance(r[c], float) and c != "compile_s" else str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
