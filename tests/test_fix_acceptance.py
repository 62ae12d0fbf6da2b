"""The shared auto-fix acceptance cases (../shared/acceptance/fix), as their README defines a pass:
`pt2kit export FILE:model --fix` succeeds and plain `torch.export.load(OUT).module()` equals the eager
model on every `probe_args` tuple."""

from __future__ import annotations

import pytest
from conftest import ROOT

from fix_cases import case_files, check_fixed

ACCEPTANCE_FIX = ROOT.parent / "shared" / "acceptance" / "fix"
CASES = case_files(ACCEPTANCE_FIX) if ACCEPTANCE_FIX.is_dir() else []


@pytest.mark.skipif(not CASES, reason=f"no acceptance cases at {ACCEPTANCE_FIX}")
@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_acceptance_case_exports_with_fix(cli, path, tmp_path):
    check_fixed(cli, path, tmp_path / f"{path.stem}.pt2")


@pytest.mark.skipif(not (ACCEPTANCE_FIX / "p07_python_flag_untouched.py").is_file(), reason="no p07 acceptance case")
def test_python_flag_branch_is_not_turned_into_cond(cli, tmp_path):
    report = check_fixed(cli, ACCEPTANCE_FIX / "p07_python_flag_untouched.py", tmp_path / "p07.pt2")
    assert report["fix"]["steps"] == [] and report["cond_count"] == 0
