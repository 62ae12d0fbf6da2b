"""pt2kit's own auto-fix corpus (tests/fix_cases): every pattern is rewritten and exports with the
eager model's values on every branch; every refusal stops with its reason, its options, and no file."""

from __future__ import annotations

import pytest

from fix_cases import case_files, check_fixed

FIXED = case_files(prefix="c")
REFUSED = case_files(prefix="r")


@pytest.mark.parametrize("path", FIXED, ids=[p.stem for p in FIXED])
def test_case_is_fixed(cli, path, tmp_path):
    report = check_fixed(cli, path, tmp_path / "out.pt2")
    fix = report["fix"]
    assert fix["ok"]
    assert fix["equivalence"] is None if not fix["steps"] else fix["equivalence"]["ok"]
    assert all(step["location"]["file"] == str(path) for step in fix["steps"])


@pytest.mark.parametrize("path", REFUSED, ids=[p.stem for p in REFUSED])
def test_case_is_refused_with_reason_and_options(cli, path, tmp_path):
    from pt2kit.target.resolve import load_target

    source = load_target(f"{path}:model").source
    out = tmp_path / "out.pt2"
    result = cli("export", f"{path}:model", "--fix", "-o", out, "-q")
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    assert f"not rewritten ({source.refusal})" in result.err
    assert "option:" in result.err
    assert f"{path}:" in result.err  # names the user's line
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
