"""Run in a fresh process by tests/test_printed_fixes.py: import each model file with the printed fixes pasted in,
call it eagerly, export it, and compare it with the original model; print one JSON line of results.

A fresh process, because pasted fixes register operators and fake kernels (`torch.library`) for good.
Usage: python fix_paste_worker.py PASTED.py=ORIGINAL.py ...
"""

from __future__ import annotations

import importlib.util
import json
import sys
import traceback

import torch


def load(path: str, name: str):
    torch.manual_seed(0)  # the same weights and example inputs for the pasted file and its original
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def leaves(value) -> list:
    """Every tensor and number in an output, registered pytree or plain object alike (the original's own class
    is not registered, the pasted one's is)."""
    if isinstance(value, (torch.Tensor, int, float, bool)) or value is None:
        return [value]
    if isinstance(value, dict):
        return [x for k in sorted(value) for x in leaves(value[k])]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in leaves(v)]
    return [x for k in sorted(vars(value)) for x in leaves(vars(value)[k])]


def dynamic_shapes(module):
    if hasattr(module, "dynamic_shapes"):
        return module.dynamic_shapes
    if isinstance(getattr(module, "dynamic", None), str):
        from pt2kit.shapes.spec import parse_dynamic, to_dynamic_shapes
        from pt2kit.target.resolve import forward_parameters

        args, kwargs = tuple(module.example_args), dict(getattr(module, "example_kwargs", {}))
        return to_dynamic_shapes(parse_dynamic(module.dynamic), forward_parameters(module.model), args, kwargs)
    return None


def check(pasted: str, original: str, index: int) -> dict:
    result = {"imports": False, "eager": False, "exports": False, "matches_original": None, "error": ""}
    stage = "import"
    try:
        fixed = load(pasted, f"pasted_{index}")
        result["imports"] = True
        args, kwargs = tuple(fixed.example_args), dict(getattr(fixed, "example_kwargs", {}))
        stage = "eager"
        with torch.no_grad():
            expected = fixed.model(*args, **kwargs)
        result["eager"] = True
        stage = "export"
        ep = torch.export.export(fixed.model, args, kwargs, dynamic_shapes=dynamic_shapes(fixed),
                                 strict=getattr(fixed, "mode", "") == "strict")
        result["exports"] = True
        stage = "exported program"
        torch.testing.assert_close(leaves(ep.module()(*args, **kwargs)), leaves(expected))
        if "torch.library" not in open(original).read():  # an original defining ops cannot be imported beside it
            stage = "original"
            base = load(original, f"original_{index}")
            with torch.no_grad():
                torch.testing.assert_close(leaves(base.model(*args, **kwargs)), leaves(expected))
            result["matches_original"] = True
    except Exception as exc:  # reported to the test, which names the stage
        if stage == "original":
            result["matches_original"] = False
        last = traceback.extract_tb(exc.__traceback__)[-1]
        result["error"] = f"{stage}: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''} " \
                          f"(at {last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
    return result


if __name__ == "__main__":
    out = {}
    for i, pair in enumerate(sys.argv[1:]):
        pasted, original = pair.split("=", 1)
        out[pasted] = check(pasted, original, i)
    print(json.dumps(out))
