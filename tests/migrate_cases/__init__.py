"""TorchScript cases for `pt2kit migrate`, one tiny model per file (ExportDB style).

Each file defines `model`, `how` (`script` or `trace`), `inputs` (the `--input` specs; a traced case leaves it
empty because its archive records them), `expect` (the strategy that should convert it, None when none can) and
optionally `dynamic` and `example_args` (what a traced case is traced with).
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch

CASES = sorted(p.stem for p in Path(__file__).parent.glob("m[0-9]*.py"))


def load_case(name: str):
    """Import case `name` (`m01_branch_on_sum`) from this folder, whatever the caller's sys.path."""
    spec = importlib.util.spec_from_file_location(f"migrate_case_{name}", Path(__file__).parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_archive(case, path: Path) -> Path:
    """Script or trace the case's model, save it with `torch.jit.save`, and return the path of the `.pt`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that TorchScript is deprecated: that is the point of migrating
        model = case.model.eval()
        scripted = torch.jit.trace(model, case.example_args) if case.how == "trace" else torch.jit.script(model)
        torch.jit.save(scripted, str(path))
    return path
