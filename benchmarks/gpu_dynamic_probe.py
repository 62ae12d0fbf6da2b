"""Why do transformers models fail to export with dynamic seq on the GPU machine (torch 2.11, transformers 5.17)?

For a few architectures of tests/architectures.py: export once with the declared dynamic spec and no
shape repair, print torch's first error, then try again with attn_implementation="eager".

    PYTHONPATH=src python benchmarks/gpu_dynamic_probe.py bert gpt2 bloom
"""

from __future__ import annotations

import contextlib
import sys
import traceback

sys.path.insert(0, "tests")

import torch  # noqa: E402

import architectures  # noqa: E402
from pt2kit import progress  # noqa: E402
from pt2kit.export.program import export_program  # noqa: E402
from pt2kit.survey.targets import collect_entries  # noqa: E402

progress.set_quiet(True)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
for name in sys.argv[1:] or ["bert", "gpt2"]:
    (entry,) = collect_entries([f"tests/architectures.py:{name}"])
    for attn in ("default", "eager", "sdpa-math"):
        target = entry.build()
        if attn == "eager":
            target.module.config._attn_implementation = "eager"
            for m in target.module.modules():
                if hasattr(m, "config") and hasattr(m.config, "_attn_implementation"):
                    m.config._attn_implementation = "eager"
        target = target.__class__(target.spec, target.module.to(DEVICE), tuple(a.to(DEVICE) for a in target.args),
                                  {k: v.to(DEVICE) for k, v in target.kwargs.items()}, None, target.dynamic)
        try:
            # sdpa-math: the same model traced with SDPA's math backend only, so no fused kernel's
            # alignment check (mask stride % 8 on CUDA) runs at trace time
            from torch.nn.attention import SDPBackend, sdpa_kernel

            with sdpa_kernel([SDPBackend.MATH]) if attn == "sdpa-math" else contextlib.nullcontext():
                export_program(target, None, dynamic=entry.dynamic, check_specialization=False, repair=False)
            print(f"{name} attn={attn}: OK")
        except Exception as exc:
            first = exc.capture.attempts[1].exception if getattr(exc, "capture", None) and len(exc.capture.attempts) > 1 else exc
            print(f"{name} attn={attn}: FAIL {type(first).__name__}: {str(first)[:1500]}")
            frames = traceback.extract_tb(first.__traceback__)
            print("   ", [f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in frames if "transformers" in f.filename][-4:])
        torch._dynamo.reset()
