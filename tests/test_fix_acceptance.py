"""The auto-fix acceptance cases (tests/acceptance/fix, vendored from the project's shared folder so a fresh clone
runs them), as their README defines a pass:
`pt2kit export FILE:model --fix` succeeds and plain `torch.export.load(OUT).module()` equals the eager
model on every `probe_args` tuple."""

from __future__ import annotations

import pytest
from conftest import ACCEPTANCE

from fix_cases import case_files, check_fixed

ACCEPTANCE_FIX = ACCEPTANCE / "fix"
CASES = case_files(ACCEPTANCE_FIX)


def test_the_vendored_cases_are_there():
    """A fresh clone runs these cases instead of skipping them: they live in the repository."""
    assert len(CASES) >= 7 and (ACCEPTANCE_FIX / "README.md").is_file()


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_acceptance_case_exports_with_fix(cli, path, tmp_path):
    check_fixed(cli, path, tmp_path / f"{path.stem}.pt2")


def test_python_flag_branch_is_not_turned_into_cond(cli, tmp_path):
    report = check_fixed(cli, ACCEPTANCE_FIX / "p07_python_flag_untouched.py", tmp_path / "p07.pt2")
    assert report["fix"]["steps"] == [] and report["cond_count"] == 0
