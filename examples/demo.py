"""The pt2kit demo: one model through the pipeline, each step a real `pt2kit` command.

Run with `make demo`. Artifacts go to ./out/.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out"
MODEL = "examples/models.py:cnn"


def step(title: str, *args: str, expect: int = 0) -> None:
    print(f"\n=== {title}\n$ pt2kit {' '.join(shlex.quote(a) for a in args)}", flush=True)
    code = subprocess.call([sys.executable, "-m", "pt2kit", *args], cwd=ROOT)
    if code != expect:
        sys.exit(f"demo step failed: exit {code}, expected {expect}")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    step("export with a dynamic batch", "export", MODEL, "-o", "out/cnn.pt2", "--dynamic", "images:0=batch[1,64]")
    step("inspect the program", "inspect", "out/cnn.pt2")
    step("run it without the model's source", "run", "out/cnn.pt2", "-i", "images=float32[8,3,32,32]", "--out", "out/logits.safetensors")
    step("a wrong input is caught before it reaches the program", "run", "out/cnn.pt2", "-i", "images=float32[100,3,32,32]", expect=2)
    print("\ndemo finished: artifacts in out/")


if __name__ == "__main__":
    main()
