"""Which bf16 method gives GPU.md's eager figures: weights cast with `.to(bfloat16)`, or `torch.autocast`?

GPU.md's bf16 eager numbers (ResNet-50 6.10 ms, BERT-base 6.17 ms) are slower than pt2kit's bench with cast
weights (4.63, 4.68). This times plain eager (no pt2kit) both ways, with CUDA events, median of 50 after 10
warm-up calls, for the models bench_gpu.py uses and for torchvision's ResNet-50 where torchvision is installed.
Run on the GPU machine: `PYTHONPATH=src:benchmarks python benchmarks/gpu/bf16_method_probe.py`.
"""

from __future__ import annotations

import contextlib

import torch

import bench_models
from common import median


def median_ms(fn, *args, context=contextlib.nullcontext) -> float:
    times = []
    with torch.inference_mode(), context():
        for i in range(60):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn(*args)
            end.record()
            torch.cuda.synchronize()
            if i >= 10:
                times.append(start.elapsed_time(end))
    return median(times)


def models():
    yield "ResNet-50 (transformers layout, 32x3x224x224)", bench_models.resnet50(32)
    yield "BERT-base (16 x 128 tokens)", bench_models.bert_base(16, 128)
    try:
        import torchvision

        torch.manual_seed(0)
        yield "ResNet-50 (torchvision, 32x3x224x224)", type("T", (), {
            "module": torchvision.models.resnet50().eval(), "args": (torch.randn(32, 3, 224, 224),)})()
    except ImportError:
        pass


def main() -> None:
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    print("| model | fp32 ms | bf16 weights cast ms | fp32 weights + autocast(bf16) ms |")
    print("| --- | --- | --- | --- |")
    for name, target in models():
        model = target.module.cuda()
        args = tuple(a.cuda() for a in target.args)
        fp32 = median_ms(model, *args)
        autocast = median_ms(model, *args, context=lambda: torch.autocast("cuda", dtype=torch.bfloat16))
        cast_args = tuple(a.to(torch.bfloat16) if a.is_floating_point() else a for a in args)
        cast = median_ms(model.to(torch.bfloat16), *cast_args)
        print(f"| {name} | {fp32:.2f} | {cast:.2f} | {autocast:.2f} |", flush=True)


if __name__ == "__main__":
    main()
