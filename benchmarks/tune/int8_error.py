"""The error of the CPU int8 package against ONNX Runtime's `quantize_dynamic`, over many random inputs (issue 25).

    python benchmarks/tune/int8_error.py --inputs 16 --out int8_error.log

benchmarks/tune/quantize.py compares errors on one input. This script builds, for the MLP and BERT-small of that
benchmark, the `--quantize int8-dynamic` package as pt2kit builds it now, the same with torchao's default
`X86InductorQuantizer` config (weight scales floored at 2**-12, what pt2kit built before), the `--quantize
int8-static` package (activation ranges calibrated on the example input only), and ONNX Runtime's
`quantize_dynamic` int8 model, and reports for each the largest |output - float32 eager| on the example input,
the median over the inputs of each input's largest error, and the mean |error| over all inputs and elements.
Inputs: the example, then random ones (MLP: standard normal; BERT-small: random token ids). Errors only, no timing.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def first(out):
    return out[0] if isinstance(out, (list, tuple)) else out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=16)
    parser.add_argument("--out", help="append the table to this file")
    args = parser.parse_args()
    import torch
    from onnxruntime import InferenceSession
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import pt2kit
    import pt2kit.compile.quantize as scheme_config
    from pt2kit.compile import compile_package
    from quantize import bert_small, mlp

    logging.getLogger("torchao").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    rows = [f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, torch {torch.__version__}, torchao {scheme_config.torchao_version()}, "
            f"{args.inputs} inputs",
            "| model | build | max abs err, example input | median of per-input max | mean abs err |", "| --- | --- | ---: | ---: | ---: |"]
    current = scheme_config.x86_config
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        tmp = Path(folder)
        for title, make in (("MLP 1024-4096 x3, batch 64", mlp), ("BERT-small (L4 H512), 4x128", bert_small)):
            target = make()
            program = tmp / f"{make.__name__}.pt2"
            pt2kit.export_program(target, program, check_specialization=False)
            onnx_path, onnx_q = tmp / f"{make.__name__}.onnx", tmp / f"{make.__name__}.int8.onnx"
            torch.onnx.export(target.module, target.args, str(onnx_path), dynamo=False, input_names=["x"])
            quantize_dynamic(str(onnx_path), str(onnx_q), weight_type=QuantType.QInt8)
            session = InferenceSession(str(onnx_q), providers=["CPUExecutionProvider"])
            calls = {"ONNX Runtime quantize_dynamic int8": lambda x: torch.from_numpy(session.run(None, {"x": x.numpy()})[0])}
            for label, scheme, config in (
                    ("int8-dynamic package (pt2kit now)", "int8-dynamic", current),
                    ("int8-dynamic, torchao's default config (scales >= 2**-12)", "int8-dynamic",
                     lambda x86, dynamic=True: x86.get_default_x86_inductor_quantization_config(is_dynamic=dynamic)),
                    ("int8-static package (calibrated on the example input)", "int8-static", current)):
                scheme_config.x86_config = config
                out = tmp / f"{make.__name__}-{len(calls)}.aoti.pt2"
                compile_package(program, out, preset="cpu-freeze", quantize=scheme, use_cache=False)
                calls[label] = (lambda m: lambda x: first(m(x)))(pt2kit.load(out, threads=1))
            scheme_config.x86_config = current
            generator = torch.Generator().manual_seed(1)
            example = target.args[0]
            inputs = [example] + [torch.randn(example.shape, generator=generator) if example.is_floating_point()
                                  else torch.randint(0, 30522, example.shape, generator=generator) for _ in range(args.inputs - 1)]
            expected = [target.module(x) for x in inputs]
            for label, call in calls.items():
                diffs = [(call(x) - e).abs() for x, e in zip(inputs, expected)]
                maxima = [float(d.max()) for d in diffs]
                rows.append(f"| {title} | {label} | {maxima[0]:.3g} | {statistics.median(maxima):.3g} | "
                            f"{statistics.mean(float(d.mean()) for d in diffs):.4g} |")
                print(rows[-1], flush=True)
    text = "\n".join(rows)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
