"""Does a deep bf16 decoder's package drift from eager by more than bf16 itself does? (issue 26, verify's finding)

    PYTHONPATH=src python benchmarks/cpu/bf16_depth.py --layers 2,22

For each depth: a narrow Llama (hidden 256, vocab 4000) built from its config with random weights, exported in
bf16 with a dynamic batch and sequence, compiled with AOTInductor on the CPU, and run at batch 4 x 200 tokens
beside the same model in float32 and in bf16 eager. If the package's error against float32 is no larger than
bf16 eager's, the package-vs-eager difference that `pt2kit verify` reports is bf16 rounding in two different
orders, not a miscompilation.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import torch
import transformers

import pt2kit


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_models import DecoderLogits as Logits  # noqa: E402


def one_depth(layers: int, folder: Path) -> str:
    config = transformers.LlamaConfig(hidden_size=256, num_hidden_layers=layers, intermediate_size=704, num_attention_heads=8,
                                      num_key_value_heads=2, vocab_size=4000, max_position_embeddings=512)
    torch.manual_seed(0)
    fp32 = transformers.AutoModelForCausalLM.from_config(config).eval()
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    target = pt2kit.Target(f"depth{layers}", Logits(bf16), (torch.randint(0, 4000, (2, 64)),), {},
                           dynamic="input_ids:0=batch[1,8],input_ids:1=seq[2,256]")
    program, package = folder / f"d{layers}.pt2", folder / f"d{layers}.aoti.pt2"
    pt2kit.export_program(target, program)
    pt2kit.compile_package(program, package, device="cpu", dtype="bf16", use_cache=False)
    loaded = pt2kit.load(package)
    x = torch.randint(0, 4000, (4, 200))
    with torch.no_grad():
        reference = Logits(fp32)(x)
        eager = Logits(bf16)(x).float()
        built = loaded(x).float()
    err = lambda a, b: (a - b).abs().max().item()  # noqa: E731
    return (f"| {layers} | {reference.abs().quantile(0.99).item():.3f} | {err(eager, reference):.4f} | {err(built, reference):.4f} "
            f"| {err(built, eager):.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="2,22")
    args = parser.parse_args()
    rows = ["| layers | p99 of |logits| | bf16 eager vs fp32 (max abs) | bf16 package vs fp32 | bf16 package vs bf16 eager |",
            "| ---: | ---: | ---: | ---: | ---: |"]
    with tempfile.TemporaryDirectory() as folder:
        for layers in args.layers.split(","):
            rows.append(one_depth(int(layers), Path(folder)))
            print(rows[-1], flush=True)
    print(f"torch {torch.__version__}\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
