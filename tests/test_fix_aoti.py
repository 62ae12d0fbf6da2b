"""Programs `--fix` produced also compile with AOTInductor (CPU) and give the eager model's values on
every branch: one with torch.cond in each block of a ModuleList, one branching on a dynamic dim."""

from __future__ import annotations

import pytest
import torch

from fix_cases import CASES_DIR, assert_same_outputs, check_fixed

CASES = ["c10_module_list_assign", "c16_dynamic_dim"]


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_fixed_program_compiles_with_aotinductor(cli, tmp_path, name):
    from pt2kit.target.resolve import load_target

    path = CASES_DIR / f"{name}.py"
    check_fixed(cli, path, tmp_path / "fixed.pt2")
    program = torch.export.load(str(tmp_path / "fixed.pt2"))
    package = torch._inductor.aoti_compile_and_package(program, package_path=str(tmp_path / "fixed_aoti.pt2"))
    compiled = torch._inductor.aoti_load_package(package)
    source = load_target(f"{path}:model").source
    for i, probe in enumerate(source.probe_args):
        with torch.no_grad():
            assert_same_outputs(source.model(*probe), compiled(*probe), f"{name} AOTInductor probe {i}")
