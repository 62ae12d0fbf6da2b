"""The pt2kit demo: models through the whole pipeline, each step a real `pt2kit` command.

Run with `make demo`. Artifacts go to ./out/.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CNN = "examples/models.py:cnn"
GATED = "examples/models.py:gated"


def step(title: str, *args: str, expect: int = 0) -> None:
    print(f"\n=== {title}\n$ pt2kit {' '.join(shlex.quote(a) for a in args)}", flush=True)
    code = subprocess.call([sys.executable, "-m", "pt2kit", *args], cwd=ROOT)
    if code != expect:
        sys.exit(f"demo step failed: exit {code}, expected {expect}")


def main() -> None:
    (ROOT / "out").mkdir(exist_ok=True)
    # a CNN: export with a dynamic batch, look inside, run it without its source
    step("export with a dynamic batch", "export", CNN, "-o", "out/cnn.pt2", "--dynamic", "images:0=batch[1,64]")
    step("inspect the program", "inspect", "out/cnn.pt2")
    step("run it without the model's source", "run", "out/cnn.pt2", "-i", "images=float32[8,3,32,32]", "--out", "out/logits.safetensors")
    step("a wrong input is caught before it reaches the program", "run", "out/cnn.pt2", "-i", "images=float32[100,3,32,32]", expect=2)
    # a model with a data-dependent branch: plain export fails; diagnose says where; --fix rewrites it
    step("diagnose a model torch.export cannot capture", "diagnose", GATED, "-i", "x=float32[4,16]", expect=1)
    step("export it with --fix: the branch becomes torch.cond", "export", GATED, "-i", "x=float32[4,16]", "--fix", "--show-diff", "-o", "out/gated.pt2")
    # AOTInductor: compile, verify against eager, benchmark
    step("compile to an AOTInductor package", "compile", "out/cnn.pt2", "-o", "out/cnn.aoti.pt2", "--device", "cpu")
    step("verify the package against the eager model", "verify", CNN, "out/cnn.aoti.pt2", "--samples", "4")
    step("run the package", "run", "out/cnn.aoti.pt2", "-i", "images=float32[8,3,32,32]")
    step("benchmark eager, export and AOTInductor", "bench", CNN, "--modes", "eager,export,aoti", "--batch-sizes", "1,8", "--iters", "30")
    print("\ndemo finished: artifacts in out/. To run the commands yourself, first: . .venv/bin/activate")


if __name__ == "__main__":
    main()
