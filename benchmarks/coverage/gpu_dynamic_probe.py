"""Why did transformers models fail to export with a dynamic sequence on the GPU machine (torch 2.11)?

For a few architectures of tests/architectures.py, on CUDA: export with the declared dynamic spec
  - `no-math-trace`: pt2kit's export with attention traced on torch's default kernel choice (what pt2kit
    did before `export_module` traced with the math backend), no shape repair: torch's first error;
  - `no-math-trace+repair`: the same with shape repair: what repair alone made of it;
  - `as-shipped`: pt2kit's export as it is now, no shape repair.

    PYTHONPATH=src python benchmarks/coverage/gpu_dynamic_probe.py bert llama bloom
"""

from __future__ import annotations

import contextlib
import sys

sys.path.insert(0, "tests")

import torch  # noqa: E402

import architectures  # noqa: E402,F401  (collect_entries reads it by path)
import pt2kit.capture.capture as capture_module  # noqa: E402
from pt2kit import progress  # noqa: E402
from pt2kit.export.program import export_program  # noqa: E402
from pt2kit.survey.targets import collect_entries  # noqa: E402

progress.set_quiet(True)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SHIPPED = capture_module.sdpa_kernel


def default_kernel_choice(backends):
    return contextlib.nullcontext()


for name in sys.argv[1:] or ["bert", "gpt2"]:
    (entry,) = collect_entries([f"tests/architectures.py:{name}"])
    for variant, repair in (("no-math-trace", False), ("no-math-trace+repair", True), ("as-shipped", False)):
        capture_module.sdpa_kernel = default_kernel_choice if variant.startswith("no-math") else SHIPPED
        target = entry.build()
        target = target.__class__(target.spec, target.module.to(DEVICE), tuple(a.to(DEVICE) for a in target.args),
                                  {k: v.to(DEVICE) for k, v in target.kwargs.items()}, None, target.dynamic)
        try:
            result = export_program(target, None, dynamic=entry.dynamic, check_specialization=False, repair=repair)
            report = result.shape_repair
            print(f"{name} {variant}: OK" + (f"; repair: {str(report)[:600]}" if report else ""))
        except Exception as exc:
            first = exc.capture.attempts[0].exception if getattr(exc, "capture", None) and exc.capture.attempts else exc
            print(f"{name} {variant}: FAIL {type(first).__name__}: {' '.join(str(first).split())[:1200]}")
        torch._dynamo.reset()
    capture_module.sdpa_kernel = SHIPPED
