"""Guards torch cannot prove and suggests no fix for (pt2kit.shapes.unprovable, and repair's `runtime-check`).

A guard true at every size in the declared range becomes a run-time assertion in the program (export
succeeds, outputs match eager); one false somewhere fails export with the sizes where it is false.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pt2kit
from pt2kit import progress
from pt2kit.errors import ExportFailed
from pt2kit.shapes.report import FixKind
from pt2kit.shapes.spec import parse_dynamic
from pt2kit.shapes.unprovable import check_guard, unprovable_guards

TORCH_MESSAGE = (
    "Constraints violated (seq)! For more information, run with TORCH_LOGS=\"+dynamic\".\n"
    "  - Not all values of seq = L['input_ids'].size()[1] in the specified range seq <= 32 satisfy the generated guard "
    "min(L['input_ids'].size()[1], 2*L['input_ids'].size()[1]) == L['input_ids'].size()[1].\n"
    "  - Not all values of seq = L['input_ids'].size()[1] in the specified range seq <= 32 satisfy the generated guard "
    "min(16*L['input_ids'].size()[1], 32*L['input_ids'].size()[1]) == (16*L['input_ids'].size()[1]).\n"
    "The error above occurred when calling torch.export.export."
)
SPEC = parse_dynamic("input_ids:0=batch[1,16],input_ids:1=seq[2,32],mask:1=2*seq")


CASES = Path(__file__).parent / "cases"
ALWAYS_TRUE, FALSE_SOMEWHERE = CASES / "dyn_guard_always_true.py", CASES / "dyn_guard_false_somewhere.py"


def test_guards_are_read_from_torchs_message_in_order_without_repeats():
    guards = unprovable_guards(TORCH_MESSAGE + "\n" + TORCH_MESSAGE)
    assert guards == ["min(L['input_ids'].size()[1], 2*L['input_ids'].size()[1]) == L['input_ids'].size()[1]",
                      "min(16*L['input_ids'].size()[1], 32*L['input_ids'].size()[1]) == (16*L['input_ids'].size()[1])"]
    short = "satisfy the generated guard (x.shape[1] % 7) != 3. The error above"  # pt2kit's short form
    assert unprovable_guards(short) == ["(x.shape[1] % 7) != 3"]


def test_a_guard_true_everywhere_holds_and_names_the_spec_dims():
    check = check_guard(unprovable_guards(TORCH_MESSAGE)[0], SPEC)
    assert check.holds and check.points == 31 and check.roots == ("seq",)
    assert check.guard == "min(seq, 2*seq) == seq"


def test_a_false_guard_lists_the_first_sizes_where_it_fails():
    check = check_guard("(L['input_ids'].size()[1] % 7) != 3", SPEC)
    assert not check.holds
    assert [f["seq"] for f in check.failing] == [3, 10, 17, 24, 31]
    assert "is false at seq=3, seq=10" in str(check)


def test_a_derived_dim_is_evaluated_through_its_root():
    assert check_guard("L['mask'].size()[1] % 2 == 0", SPEC).holds  # mask:1 = 2*seq is always even
    check = check_guard("L['mask'].size()[1] < 40", SPEC)  # 2*seq reaches 64
    assert [f["seq"] for f in check.failing][:1] == [20]


def test_two_roots_are_checked_over_their_product():
    check = check_guard("L['input_ids'].size()[0] * L['input_ids'].size()[1] <= 512", SPEC)
    assert check.holds and check.points == 16 * 31 and set(check.roots) == {"batch", "seq"}


@pytest.mark.parametrize("guard, spec, why", [
    ("L['x'].size()[1] > 1", "x:1=s[2,]", "no upper bound"),
    ("L['y'].size()[0] > 1", "x:1=s[2,8]", "does not name"),
    ("L['x'].size()[1].__class__ == 1", "x:1=s[2,8]", "cannot read"),
    ("__import__('os').getpid() > 0", "x:1=s[2,8]", "cannot read"),
    ("'a' * L['x'].size()[1] != ''", "x:1=s[2,8]", "cannot read"),
    ("L['x'].size()[1] > 1", "x:1=s[0,10000000]", "at most"),
    ("1 // (L['x'].size()[1] - 3) >= 0", "x:1=s[2,8]", "raised ZeroDivisionError"),
])
def test_what_cannot_be_checked_is_never_deferred(guard, spec, why):
    check = check_guard(guard, parse_dynamic(spec))
    assert not check.holds and why in check.why_unchecked


def _export(case: Path, dynamic="x:1=s[2,32]"):
    target = pt2kit.load_target(f"{case}:model")
    progress.set_quiet(True)
    try:
        return target.module, pt2kit.export_program(target, None, dynamic=dynamic, check_specialization=False)
    finally:
        progress.set_quiet(False)


def test_a_guard_true_in_range_becomes_a_run_time_assertion_and_export_succeeds():
    model, result = _export(ALWAYS_TRUE)
    (repair,) = result.shape_repair.repairs
    assert repair.kind is FixKind.RUNTIME_CHECK and repair.applied and "31 sizes" in repair.reason
    for n in (2, 13, 32):
        x = torch.randn(2, n)
        assert torch.equal(result.program.module()(x), model(x))
    with pytest.raises(Exception, match="<= 32"):
        result.program.module()(torch.randn(2, 40))


def test_a_guard_false_somewhere_fails_export_with_the_sizes():
    with pytest.raises(ExportFailed) as failure:
        _export(FALSE_SOMEWHERE)
    text = str(failure.value)
    assert "is false at s=3, s=10, s=17, s=24, s=31" in text
    assert "declare a range where they hold" in text


def test_a_narrower_range_where_the_guard_holds_exports():
    model, result = _export(FALSE_SOMEWHERE, "x:1=s[4,9]")
    assert result.shape_repair.repairs[0].kind is FixKind.RUNTIME_CHECK
    x = torch.randn(2, 9)
    assert torch.equal(result.program.module()(x), model(x))


def test_the_command_line_reports_the_repair_and_the_failure(cli, tmp_path):
    ok = cli("export", f"{ALWAYS_TRUE}:model", "-o", tmp_path / "ok.pt2", "--dynamic", "x:1=s[2,32]", "--json")
    assert ok.code == 0, ok.err
    assert '"kind": "runtime-check"' in ok.out and (tmp_path / "ok.pt2").exists()
    failed = cli("export", f"{FALSE_SOMEWHERE}:model", "-o", tmp_path / "no.pt2", "--dynamic", "x:1=s[2,32]")
    assert failed.code == 1 and "is false at s=3" in failed.err and "Traceback" not in failed.err
    assert not (tmp_path / "no.pt2").exists()


def test_an_unbounded_range_is_not_deferred_and_says_to_bound_it():
    with pytest.raises(ExportFailed) as failure:
        _export(ALWAYS_TRUE, "x:1=s[2,]")
    assert "`s` has no upper bound; give it one (`s[2,N]`)" in str(failure.value)
