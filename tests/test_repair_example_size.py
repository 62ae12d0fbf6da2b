"""Repair tells a dim the model fixes from a dim torch pinned only because of the example's size."""

import pytest
import torch

import pt2kit
from conftest import case
from pt2kit.shapes.repair import FixKind


def test_a_dim_pinned_to_the_example_size_is_retraced_at_another_size(tmp_path):
    target = pt2kit.load_target(f"{case('dyn_view_multiple')}:model")
    result = pt2kit.export_program(target, tmp_path / "m.pt2", dynamic="x:0=batch[1,16],x:1=seq[2,32]", check_specialization=False)
    kinds = [(r.kind, r.dim, r.applied) for r in result.shape_repair.repairs]
    assert kinds[0] == (FixKind.RESIZE_EXAMPLE, "seq", True), kinds
    assert (FixKind.RELATE, "seq", True) in kinds
    assert FixKind.SPECIALIZE not in [k for k, _, _ in kinds]
    model = pt2kit.load(result.path)
    for columns in (16, 24, 32):
        x = torch.randn(3, columns)
        torch.testing.assert_close(model(x), target.module(x))
    with pytest.raises(pt2kit.InputMismatchError, match="steps of 8"):
        model(torch.randn(3, 20))


def test_a_dim_the_model_really_fixes_is_still_made_static(tmp_path):
    # eager rejects any other size (a weight of 16 columns), so the re-trace is not attempted
    target = pt2kit.load_target(f"{case('dyn_weight_sized_dim')}:model")
    result = pt2kit.export_program(target, tmp_path / "m.pt2", dynamic="x:0=batch[1,64],x:1=feat", check_specialization=False)
    assert [(r.kind, r.dim) for r in result.shape_repair.repairs] == [(FixKind.SPECIALIZE, "feat")]
