"""Plain `torch.export` against `pt2kit export --fix` over the auto-fix corpus.

The corpus is every case of ../shared/acceptance/fix (when present) and tests/fix_cases. A case passes
when the program exports and, read back with `torch.export.load(...).module()`, equals the eager model
on every `probe_args` tuple (a branch baked in by export is a failure, not a pass).

    python benchmarks/coverage/fix_corpus.py            # prints a table and both pass counts
    python benchmarks/coverage/fix_corpus.py DIR ...    # the cases of other folders instead
"""

from __future__ import annotations

import contextlib
import datetime
import io
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils import _pytree as pytree

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from pt2kit.capture.capture import quiet_torch_logs  # noqa: E402
from pt2kit.cli import main as pt2kit_main  # noqa: E402
from pt2kit.shapes.spec import parse_dynamic, to_dynamic_shapes  # noqa: E402
from pt2kit.target.resolve import load_target  # noqa: E402

FOLDERS = [ROOT.parent / "shared" / "acceptance" / "fix", ROOT / "tests" / "fix_cases"]


def matches(program_module, source) -> str:
    """'' when the program equals the eager model on every probe, else why not."""
    for i, probe in enumerate(source.probe_args):
        with torch.no_grad():
            expected = source.model(*probe)
            try:
                got = program_module(*probe)
            except Exception as exc:  # a size the program's guards reject: export narrowed a dim
                return f"rejects probe {i} ({type(exc).__name__})"
        for a, b in zip(pytree.tree_leaves(expected), pytree.tree_leaves(got)):
            a, b = torch.as_tensor(a), torch.as_tensor(b)
            if a.shape != b.shape or not torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-5, equal_nan=True):
                return f"wrong values on probe {i}"
    return ""


def plain_export(path: Path, out: Path) -> str:
    target = load_target(f"{path}:model")
    spec = parse_dynamic(target.dynamic)
    dynamic_shapes = to_dynamic_shapes(spec, target.parameter_names, target.args, target.kwargs)
    try:
        with quiet_torch_logs(), contextlib.redirect_stderr(io.StringIO()):
            ep = torch.export.export(target.module, target.args, target.kwargs, dynamic_shapes=dynamic_shapes, strict=False)
            torch.export.save(ep, str(out))
    except Exception as exc:
        return f"{type(exc).__name__}"
    return matches(torch.export.load(str(out)).module(), target.source)


def fixed_export(path: Path, out: Path) -> str:
    target = load_target(f"{path}:model")
    args = ["export", f"{path}:model", "--fix", "-o", str(out), "-q"]
    if target.dynamic:
        args += ["--dynamic", target.dynamic]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = pt2kit_main(args)
    if code != 0:
        reason = next((ln.split("not rewritten (")[1].split(")")[0] for ln in err.getvalue().splitlines() if "not rewritten (" in ln), "")
        return f"refused: {reason}" if reason else f"exit {code}"
    return matches(torch.export.load(str(out)).module(), target.source)


def main() -> int:
    folders = [Path(a) for a in sys.argv[1:]] or FOLDERS
    cases = [p.resolve() for folder in folders if folder.is_dir() for p in sorted(folder.glob("*.py")) if not p.name.startswith("_")]
    rows, plain_ok, fix_ok, start = [], 0, 0, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for path in cases:
            plain = plain_export(path, Path(tmp) / f"{path.stem}.plain.pt2")
            fixed = fixed_export(path, Path(tmp) / f"{path.stem}.fix.pt2")
            plain_ok += plain == ""
            fix_ok += fixed == ""
            rows.append((f"{path.parent.name}/{path.name}", plain or "pass", fixed or "pass"))
    width = max(len(r[0]) for r in rows)
    print(f"| {'case'.ljust(width)} | plain torch.export | pt2kit export --fix |")
    print(f"| {'-' * width} | --- | --- |")
    for name, plain, fixed in rows:
        print(f"| {name.ljust(width)} | {plain} | {fixed} |")
    print()
    print(f"plain torch.export:  {plain_ok}/{len(rows)} pass")
    print(f"pt2kit export --fix: {fix_ok}/{len(rows)} pass "
          f"({sum(r[2].startswith('refused') for r in rows)} refused on purpose: torch.cond cannot express them)")
    print(f"torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()} {platform.system()}, "
          f"{datetime.date.today()}, {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
