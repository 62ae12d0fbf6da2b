"""Auto-fix cases, one tiny model per file (ExportDB style), and the one check each goes through.

Each file defines `model`, `example_args`, `probe_args` (argument tuples that take every branch),
optionally `dynamic` (a `--dynamic` spec), and either `rewrites` (how many branches `--fix` must
rewrite; 0: the program must hold no `torch.cond`) or `refusal` (the `RefusalReason` value `--fix`
must stop with).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils import _pytree as pytree

CASES_DIR = Path(__file__).resolve().parent


def case_files(folder: Path = CASES_DIR, prefix: str = "") -> list[Path]:
    """The case files of `folder` (those starting with `prefix`), sorted."""
    return sorted(p for p in folder.glob(f"{prefix}*.py") if not p.name.startswith("_"))


def cond_count(program: torch.export.ExportedProgram) -> int:
    """How many `torch.cond` the program holds, nested ones included."""
    return sum(
        1 for gm in program.graph_module.modules() if isinstance(gm, torch.fx.GraphModule)
        for node in gm.graph.nodes if node.op == "call_function" and node.target is torch.ops.higher_order.cond
    )


def classes_of(model: torch.nn.Module) -> list[tuple[type, object]]:
    """Each submodule's class and its forward's code: to show `--fix` left the user's objects alone."""
    return [(type(m), type(m).forward.__code__) for m in model.modules()]


def assert_same_outputs(expected, got, where: str) -> None:
    exp_leaves, _ = pytree.tree_flatten(expected)
    got_leaves, _ = pytree.tree_flatten(got)
    assert len(exp_leaves) == len(got_leaves), where
    for a, b in zip(exp_leaves, got_leaves):
        torch.testing.assert_close(torch.as_tensor(b), torch.as_tensor(a), rtol=1e-4, atol=1e-5, msg=lambda m: f"{where}: {m}")


GOLDEN_DIR = CASES_DIR.parent / "golden"


def check_golden(path: Path, diff: str) -> None:
    """The rewrite of `path` equals tests/golden/fix_<case>.diff (file headers reduced to the file name).
    PT2KIT_UPDATE_GOLDEN=1 rewrites the golden file instead."""
    golden = GOLDEN_DIR / f"fix_{path.stem}.diff"
    text = "".join(
        (line[:4] + path.name + "\n") if line.startswith(("--- ", "+++ ")) else line
        for line in diff.splitlines(keepends=True)
    )
    if os.environ.get("PT2KIT_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"rewrite of {path.name} differs from {golden}"


def check_fixed(cli, path: Path, out: Path) -> dict:
    """`pt2kit export PATH:model --fix` succeeds; plain `torch.export.load(out).module()` equals the eager
    model on every probe; the user's model is unchanged. Returns the export's JSON."""
    from pt2kit.target.resolve import load_target

    source = load_target(f"{path}:model").source
    before = classes_of(source.model)
    args = ["export", f"{path}:model", "--fix", "-o", out, "--json", "-q"]
    if getattr(source, "dynamic", None):
        args += ["--dynamic", source.dynamic]
    result = cli(*args)
    assert result.code == 0, result.err
    program = torch.export.load(str(out))
    module = program.module()
    for i, probe in enumerate(source.probe_args):
        with torch.no_grad():
            assert_same_outputs(source.model(*probe), module(*probe), f"{path.name} probe {i}")
    assert classes_of(source.model) == before, "--fix changed the user's model"
    report = result.json()
    if hasattr(source, "rewrites"):
        assert len(report["fix"]["steps"]) == source.rewrites
        assert (cond_count(program) > 0) == (source.rewrites > 0)
    report["cond_count"] = cond_count(program)
    if (GOLDEN_DIR / f"fix_{path.stem}.diff").exists() or os.environ.get("PT2KIT_UPDATE_GOLDEN") and report["fix"]["diff"]:
        check_golden(path, report["fix"]["diff"])
    return report
