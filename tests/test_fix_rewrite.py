"""--fix beyond the corpus: the patch applies and exports as written, --show-diff and --json, the
user's file is never touched, a rewrite that does not match the original writes nothing, the library API."""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import subprocess

import pytest
import torch

from fix_cases import CASES_DIR, assert_same_outputs, check_golden


def _import_copy(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("tool", ["patch", "git"])
def test_written_patch_applies_and_the_patched_file_exports_with_plain_torch_export(cli, tmp_path, monkeypatch, tool):
    case = shutil.copy(CASES_DIR / "c05_assign_many.py", tmp_path / "model.py")
    before = (tmp_path / "model.py").read_text()
    monkeypatch.chdir(tmp_path)
    result = cli("export", "model.py:model", "--fix", "--write-patch", "fix.patch", "-o", "out.pt2", "-q")
    assert result.code == 0, result.err
    assert (tmp_path / "model.py").read_text() == before  # --fix never edits the user's file
    patch_text = (tmp_path / "fix.patch").read_text()
    assert patch_text.startswith("--- model.py\n+++ model.py\n")
    command = ["patch", "-p0", "-i", "fix.patch"] if tool == "patch" else ["git", "apply", "-p0", "fix.patch"]
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    patched = _import_copy(case, f"patched_{tool}")
    original = _import_copy(CASES_DIR / "c05_assign_many.py", f"original_{tool}")
    program = torch.export.export(patched.model, patched.example_args, strict=False).module()
    for probe in original.probe_args:
        assert_same_outputs(original.model(*probe), program(*probe), "patched file")


def test_show_diff_prints_the_rewrite_before_the_summary(cli, tmp_path):
    path = CASES_DIR / "c01_if_else_return.py"
    result = cli("export", f"{path}:model", "--show-diff", "-o", tmp_path / "out.pt2", "-q")
    assert result.code == 0, result.err
    assert "+        return torch.cond(x.sum() > 0, _if_x_sum_positive, _if_x_sum_nonpositive, (x,))" in result.out
    assert "-        if x.sum() > 0:" in result.out
    assert result.out.index("@@") < result.out.index("exported")
    assert "-> torch.cond (if-else-return)" in result.out


def test_json_with_show_diff_is_one_document_carrying_the_diff(cli, tmp_path):
    path = CASES_DIR / "c11_item_reused.py"
    result = cli("export", f"{path}:model", "--fix", "--show-diff", "--json", "-o", tmp_path / "out.pt2", "-q")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    check_golden(path, report["fix"]["diff"])
    assert report["fix"]["steps"][0]["rule"] == "assign"
    assert any("fix: " in note for note in report["manifest"]["notes"])


def test_unchanged_model_writes_an_empty_patch(cli, tmp_path):
    path = CASES_DIR / "c18_python_conditions_untouched.py"
    result = cli("export", f"{path}:model", "--write-patch", tmp_path / "fix.patch", "-o", tmp_path / "out.pt2", "-q")
    assert result.code == 0, result.err
    assert (tmp_path / "fix.patch").read_text() == ""


def test_rewrite_that_disagrees_with_the_original_aborts_and_writes_nothing(cli, tmp_path, monkeypatch):
    from pt2kit.rewrite import rules

    right = rules.tensor_predicate
    # a seam for a wrong rewrite: the condition negated, so the branches swap
    monkeypatch.setattr(rules, "tensor_predicate", lambda test, ctx: ast.UnaryOp(ast.Invert(), right(test, ctx)))
    out, patch_file = tmp_path / "out.pt2", tmp_path / "fix.patch"
    result = cli("export", f"{CASES_DIR / 'c04_assign_no_else.py'}:model", "--fix", "--write-patch", patch_file, "-o", out, "-q")
    assert result.code == 1
    assert "not rewritten (not-equivalent)" in result.err and "NOT equivalent" in result.err
    assert not out.exists() and not patch_file.exists()


def test_library_fix_model_leaves_the_model_alone_and_reports(tmp_path):
    import pt2kit

    target = pt2kit.load_target(f"{CASES_DIR / 'c10_module_list_assign.py'}:model")
    classes = [type(m) for m in target.module.modules()]
    result = pt2kit.fix_model(target.module, target.args, param_names=target.parameter_names)
    assert isinstance(result, pt2kit.FixResult) and result.ok
    assert [type(m) for m in target.module.modules()] == classes
    assert result.module is not target.module
    assert {type(m).__name__ for m in result.module.modules()} == {c.__name__ for c in classes}
    assert str(result).startswith("fix: rewrote 1 branch into torch.cond")
    assert json.loads(json.dumps(result.to_json()))["steps"][0]["function"] == "Gate.forward"
    assert result.equivalence.ok and result.equivalence.inputs >= 6


def test_refusal_is_typed_with_options():
    import pt2kit

    target = pt2kit.load_target(f"{CASES_DIR / 'r03_module_state.py'}:model")
    result = pt2kit.fix_model(target.module, target.args, param_names=target.parameter_names)
    assert not result.ok
    refusal = result.left[0]
    assert refusal.reason is pt2kit.RefusalReason.SIDE_EFFECT
    assert refusal.location.line == 14 and "self.last_peak = x.max()" in refusal.detail
    assert refusal.options and refusal.to_json()["reason"] == "side-effect"
    assert isinstance(pt2kit.FixFailed("x"), pt2kit.ExportFailed)


def test_strict_mode_fixes_nested_branches_without_python_frames(cli, tmp_path):
    # strict capture (TorchDynamo) keeps no Python frame: which values are tensors is read off the source
    path = CASES_DIR / "c09_nested_return.py"
    out = tmp_path / "strict.pt2"
    result = cli("export", f"{path}:model", "--fix", "--mode", "strict", "-o", out, "--json", "-q")
    assert result.code == 0, result.err
    assert len(result.json()["fix"]["steps"]) == 3
    from pt2kit.target.resolve import load_target

    source = load_target(f"{path}:model").source
    program = torch.export.load(str(out)).module()
    for probe in source.probe_args:
        assert_same_outputs(source.model(*probe), program(*probe), "strict")


def test_refusal_as_json_is_one_document_with_the_fix_report(cli, tmp_path):
    result = cli("export", f"{CASES_DIR / 'r04_return_in_loop.py'}:model", "--fix", "-o", tmp_path / "out.pt2", "--json", "-q")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["ok"] is False
    assert report["fix"]["left"][0]["reason"] == "return-in-loop" and report["fix"]["left"][0]["options"]
