"""`pt2kit diagnose` over the blocker corpus in tests/blockers/ (one tiny model per file).

Each case marks the lines diagnose must report with a trailing `# blocker: KIND` comment; the test
reads them from the file, so nothing here hard-codes a line number.
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import pytest
import torch

import pt2kit
from pt2kit.diagnose import BlockerKind
from pt2kit.diagnose.branch_fix import replaced_span
from pt2kit.shapes.spec import parse_dynamic, to_dynamic_shapes
from conftest import check_one_line_error

BLOCKERS = Path(__file__).resolve().parent / "blockers"
CASES = sorted(p for p in BLOCKERS.glob("*.py") if p.name != "__init__.py")
_MARK = re.compile(r"#\s*blocker:\s*(\w+)")
_DIAGNOSES: dict[Path, tuple] = {}


def expected_blockers(path: Path) -> set[tuple[str, int]]:
    """(kind, line) for every line of the case marked `# blocker: KIND`."""
    return {(m.group(1), i) for i, line in enumerate(path.read_text().splitlines(), 1) for m in [_MARK.search(line)] if m}


def diagnosed(path: Path):
    """The case's target and its diagnosis, computed once per test session."""
    if path not in _DIAGNOSES:
        target = pt2kit.load_target(f"{path}:model")
        _DIAGNOSES[path] = (target, pt2kit.diagnose_model(target, mode=getattr(target.source, "mode", "auto")))
    return _DIAGNOSES[path]


def test_corpus_covers_every_kind():
    assert len(CASES) >= 15
    covered = {kind for path in CASES for kind, _ in expected_blockers(path)}
    assert covered == {str(k) for k in BlockerKind}


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_reports_each_marked_blocker_at_its_line(path):
    target, diagnosis = diagnosed(path)
    found = {(str(b.kind), b.location.line) for b in diagnosis.blockers}
    assert found == expected_blockers(path), str(diagnosis)
    for blocker in diagnosis.blockers:
        assert Path(blocker.location.file) == path  # the user's file, never a torch-internal frame
        assert blocker.location.code and blocker.location.code == path.read_text().splitlines()[blocker.location.line - 1].strip()
        if blocker.fix_is_code:
            ast.parse(blocker.fix)  # every fix printed as code is valid Python (test_printed_fixes pastes and runs it)
        assert blocker.explanation
    stops = any(b.kind.stops_export for b in diagnosis.blockers)
    assert diagnosis.exports is not stops
    lines = [b.location.line for b in diagnosis.blockers]
    assert lines == sorted(lines)  # one block per blocker, in source order


def _edits(fix: str) -> list[tuple[int, int, list[str]]]:
    """(first, last, new lines) a printed fix asks for: `# replaces lines A-B` or `# add before line N`."""
    lines = fix.splitlines()
    for i, line in enumerate(lines):
        body = []
        for ln in lines[i + 1:]:
            if ln.startswith("# or"):
                break
            body.append(ln)
        if line.startswith("# replaces lines"):
            first, last = replaced_span(line)
            return [(first, last, body)]
        m = re.match(r"# add before line (\d+):", line)
        if m:
            return [(int(m.group(1)), int(m.group(1)) - 1, [ln for ln in body if not ln.startswith("#")])]
    return []


def _forward_with_fixes(target, fixes: list[str]) -> torch.nn.Module:
    """A copy of the model whose `forward` has every printed fix applied where it says."""
    path = target.source.__file__
    lines = Path(path).read_text().splitlines()
    edits = sorted((e for fix in fixes for e in _edits(fix)), key=lambda e: -e[0])
    assert edits, fixes
    for first, last, body in edits:
        indent = re.match(r"\s*", lines[first - 1]).group()
        lines[first - 1:last] = [indent + ln if ln else ln for ln in body]
    cls = type(target.module)
    tree = ast.parse("\n".join(lines))
    (fn,) = [n for c in tree.body if isinstance(c, ast.ClassDef) and c.name == cls.__name__
             for n in c.body if isinstance(n, ast.FunctionDef) and n.name == "forward"]
    namespace = dict(vars(target.source))
    exec(compile(ast.Module([fn], []), path, "exec"), namespace)
    patched = copy.copy(target.module)
    patched.__class__ = type(cls.__name__, (cls,), {"forward": namespace["forward"]})
    return patched


# cases whose every blocker is a branch or a value in the model's own forward: applying all the
# printed fixes must make export succeed with the same outputs
REWRITE_CASES = [p for p in CASES if {k for k, _ in expected_blockers(p)} <= {"data_dependent_branch", "data_dependent_value"}
                 and "while" not in p.read_text() and "def gate" not in p.read_text()]


@pytest.mark.parametrize("path", REWRITE_CASES, ids=lambda p: p.stem)
def test_applying_the_printed_fixes_makes_export_succeed(path):
    if path.stem == "int_as_split_size" and torch.__version__ < "2.13":
        pytest.xfail("torch 2.11 first asks whether the split size is 0 (the printed `torch._check(k != 0)`) and "
                     "only then for the chunk count, which a second diagnose run pins")
    target, diagnosis = diagnosed(path)
    assert all(b.kind is not BlockerKind.DATA_DEPENDENT_BRANCH or (b.auto_fixable and "torch.cond" in b.fix)
               for b in diagnosis.blockers)
    fixed = _forward_with_fixes(target, [b.fix for b in diagnosis.blockers])
    torch.export.export(fixed, target.args, target.kwargs, strict=getattr(target.source, "mode", "") == "strict")
    torch.testing.assert_close(fixed(*target.args, **target.kwargs), target.module(*target.args, **target.kwargs))


def test_shape_branch_on_dynamic_dim_rewrite_keeps_every_size():
    target, diagnosis = diagnosed(BLOCKERS / "shape_branch_dynamic.py")
    (blocker,) = diagnosis.blockers
    assert blocker.auto_fixable and "Dim('batch', min=6)" in blocker.fix
    fixed = _forward_with_fixes(target, [blocker.fix])
    shapes = to_dynamic_shapes(parse_dynamic(target.dynamic), target.parameter_names, target.args, target.kwargs)
    program = torch.export.export(fixed, target.args, dynamic_shapes=shapes).module()
    for n in (3, 10):  # both sides of the branch survive in one program
        x = torch.randn(n, 2)
        torch.testing.assert_close(program(x), target.module(x))


def test_three_blockers_in_one_run():
    path = BLOCKERS / "three_blockers.py"
    _, diagnosis = diagnosed(path)
    kinds = [(b.kind, b.location.line) for b in diagnosis.blockers]
    assert [k for k, _ in kinds] == [BlockerKind.DATA_DEPENDENT_BRANCH, BlockerKind.DATA_DEPENDENT_VALUE,
                                     BlockerKind.UNSUPPORTED_OPERATOR]
    operator = diagnosis.blockers[2]
    assert "@torch.library.register_fake('pt2kit_blockers::mystery')" in operator.fix
    assert "k = n.item()" in diagnosis.blockers[1].fix
    _assert_checks_hold(diagnosis.blockers[1].fix, {"k": 3})
    assert not diagnosis.exports and not diagnosis.successful()


def _assert_checks_hold(fix: str, example_values: dict) -> None:
    """The fix has `torch._check(...)` lines, and each holds for the example's values."""
    checks = [ln for ln in fix.splitlines() if ln.startswith("torch._check(")]
    assert checks, fix
    for line in checks:
        exec(line, {"torch": torch}, dict(example_values))  # torch._check raises when it does not hold


def test_fake_kernel_stub_registers_and_makes_export_succeed():
    target, diagnosis = diagnosed(BLOCKERS / "library_op_no_meta.py")
    (blocker,) = diagnosis.blockers
    # register the printed stub in a scoped library, so the rest of the session still sees the op without one
    scoped = torch.library.Library("pt2kit_blockers_lib", "FRAGMENT")
    try:
        exec(blocker.fix.replace("register_fake('pt2kit_blockers_lib::twice')",
                                 "register_fake('pt2kit_blockers_lib::twice', lib=_scoped)"),
             {"torch": torch, "_scoped": scoped})
        torch.export.export(target.module, target.args)
    finally:
        scoped._destroy()


def test_fixes_are_specific_to_the_line():
    by_case = {p.stem: diagnosed(p)[1].blockers for p in CASES}
    assert "dynamic_shapes = {'x': {0: a}, 'y': {0: a}}" in by_case["unequal_dims"][0].fix
    assert "x = x.unsqueeze(0)" in by_case["inplace_view_on_input"][0].fix
    assert "register_pytree_node(Pair" in by_case["custom_class_input"][0].fix
    assert "register_pytree_node(Result" in by_case["custom_class_output"][0].fix
    assert "torch.randn(2, 8)" in by_case["zero_one_example"][0].fix
    assert "k = size.item()" in by_case["int_as_split_size"][0].fix
    _assert_checks_hold(by_case["item_as_loop_count"][0].fix, {"steps": 3})
    _assert_checks_hold(by_case["int_as_split_size"][1].fix, {"k": 4})
    assert "while_loop(cond_fn, body_fn, (x,))" in by_case["while_on_value"][0].fix
    assert "batch = 4" not in by_case["view_static_batch"][0].fix and "drop --dynamic" in by_case["view_static_batch"][0].fix


def test_unclassified_failure_keeps_torchs_message():
    _, diagnosis = diagnosed(BLOCKERS / "refuses_export.py")
    (blocker,) = diagnosis.blockers
    assert blocker.kind is BlockerKind.UNCLASSIFIED
    assert "must not be exported: it reads a device-side cache" in blocker.message
    assert "must not be exported" in str(diagnosis)


def test_compile_report_counts_graph_breaks_where_export_needs_none():
    path = BLOCKERS / "branch_on_sum.py"
    _, diagnosis = diagnosed(path)
    report = diagnosis.compile
    assert report.ran and len(report.graph_breaks) == 1 and report.graph_count == 2
    (line,) = [ln for kind, ln in expected_blockers(path)]
    assert report.graph_breaks[0].location.line == line
    assert "1 graph break" in str(diagnosis)


def test_specialized_branch_is_reported_but_the_model_exports():
    _, diagnosis = diagnosed(BLOCKERS / "shape_specialized.py")
    assert diagnosis.exports and not diagnosis.successful()
    (blocker,) = diagnosis.blockers
    assert "x.shape[0] > 5" in blocker.explanation and "Dim('x_dim0')" in blocker.fix


def test_clean_model_is_successful(cli):
    result = cli("diagnose", f"{Path(__file__).parent / 'cases' / 'linear_relu.py'}:model", "--json", "-q")
    assert result.code == 0
    doc = result.json()
    assert doc["blockers"] == [] and doc["ok"] and doc["compile"]["graph_break_count"] == 0


def test_cli_json_schema_and_exit_code(cli):
    result = cli("diagnose", f"{BLOCKERS / 'three_blockers.py'}:model", "--json", "-q")
    assert result.code == 1
    doc = result.json()
    keys = {"kind", "file", "line", "code", "explanation", "fix", "auto_fixable"}
    assert all(keys <= set(b) for b in doc["blockers"])
    assert [(b["kind"], b["line"]) for b in doc["blockers"]] == sorted(
        expected_blockers(BLOCKERS / "three_blockers.py"), key=lambda kl: kl[1])
    assert "compile" in doc


def test_cli_text_report_and_exit_zero_for_silent_kind(cli):
    result = cli("diagnose", f"{BLOCKERS / 'shape_specialized.py'}:model", "-q")
    assert result.code == 0 and "shape_specialized" in result.out and "fix:" in result.out


def test_cli_bad_usage_is_one_line(cli):
    check_one_line_error(cli("diagnose", "missing.py:model"), "missing.py")
    check_one_line_error(cli("diagnose", f"{BLOCKERS / 'view_static_batch.py'}:model", "--dynamic", "q:0=b"), "no input `q`")


def test_export_failure_prints_the_diagnosis(cli, tmp_path):
    result = cli("export", f"{BLOCKERS / 'three_blockers.py'}:model", "-o", tmp_path / "m.pt2", "-q")
    assert result.code == 1 and not (tmp_path / "m.pt2").exists()
    for kind, line in expected_blockers(BLOCKERS / "three_blockers.py"):
        assert f"three_blockers.py:{line}:" in result.out and f"[{kind}]" in result.out
