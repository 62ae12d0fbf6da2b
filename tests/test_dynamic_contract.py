"""The shape contract: every dynamic dim, its range and its relations in the manifest, checked by `run` and `load`."""

import pytest
import torch

import pt2kit
from conftest import case, check_one_line_error
from pt2kit.artifact.manifest import Manifest


@pytest.fixture(scope="module")
def shared_program(tmp_path_factory):
    """two_inputs_dict_out: `x` and `mask` share batch and seq."""
    out = tmp_path_factory.mktemp("shared") / "shared.pt2"
    target = pt2kit.load_target(f"{case('two_inputs_dict_out')}:model")
    pt2kit.export_program(target, out, dynamic="x:0=batch[1,8],x:1=seq[2,32],mask:0=batch,mask:1=seq")
    return out


@pytest.fixture(scope="module")
def derived_program(tmp_path_factory):
    """dyn_concat_self: `y.shape[1] == 2 * x.shape[1]` (the file's own `dynamic`)."""
    out = tmp_path_factory.mktemp("derived") / "derived.pt2"
    pt2kit.export_program(pt2kit.load_target(f"{case('dyn_concat_self')}:model"), out)
    return out


def test_manifest_holds_every_dim_its_range_and_where_it_is_shared(shared_program):
    manifest = pt2kit.load(shared_program).manifest
    dims = {d.name: d for d in manifest.dims}
    assert (dims["batch"].min, dims["batch"].max, dims["batch"].used_by) == (1, 8, ("x:0", "mask:0"))
    assert (dims["seq"].min, dims["seq"].max, dims["seq"].used_by) == (2, 32, ("x:1", "mask:1"))
    assert Manifest.from_json(manifest.to_json()) == manifest  # survives the JSON round trip


def test_manifest_holds_derived_dims_as_relations(derived_program):
    manifest = pt2kit.load(derived_program).manifest
    (n,) = manifest.dims
    (relation,) = manifest.relations
    assert (n.name, n.min, n.max) == ("n", 1, 16)
    assert (relation.input, relation.dim, relation.named, relation.min, relation.max) == ("y", 1, "2*n", 2, 32)
    assert relation.expr == f"2*{n.symbol}"
    assert Manifest.from_json(manifest.to_json()).relations == manifest.relations


@pytest.mark.parametrize(
    "inputs, needles",
    [
        (["x=float32[9,4,6]", "mask=float32[9,4]"], ["`x` dim 0", "size 9", "`batch` [1, 8]", "x:0=batch[1,9]"]),
        (["x=float32[2,33,6]", "mask=float32[2,33]"], ["`x` dim 1", "size 33", "`seq` [2, 32]"]),
        (["x=float32[2,4,6]", "mask=float32[3,4]"], ["`mask` dim 0", "size 3", "`batch` is 2 (from input `x` dim 0)", "must be equal"]),
        (["x=float32[2,4,6]", "mask=float32[2,5]"], ["`mask` dim 1", "size 5", "`seq`"]),
        (["x=float32[2,4,7]", "mask=float32[2,4]"], ["`x` dim 2", "size 7", "expected 6 (static)"]),
    ],
)
def test_run_names_input_dim_size_and_range(cli, shared_program, inputs, needles):
    args = [a for spec in inputs for a in ("-i", spec)]
    check_one_line_error(cli("run", shared_program, *args), *needles)


def test_run_inside_the_ranges_matches_eager(cli, shared_program):
    model = pt2kit.load(shared_program)
    eager = pt2kit.load_target(f"{case('two_inputs_dict_out')}:model").module
    for batch, seq in ((1, 2), (3, 17), (8, 32)):
        x, mask = torch.randn(batch, seq, 6), torch.ones(batch, seq)
        torch.testing.assert_close(model(x, mask, scale=2.0), eager(x, mask, scale=2.0))
    assert cli("run", shared_program, "-i", "x=float32[8,32,6]", "-i", "mask=float32[8,32]").code == 0


def test_derived_dim_is_checked_at_run_and_load(cli, derived_program):
    assert cli("run", derived_program, "-i", "x=float32[2,5]", "-i", "y=float32[2,10]").code == 0
    check_one_line_error(cli("run", derived_program, "-i", "x=float32[2,5]", "-i", "y=float32[2,9]"),
                         "`y` dim 1", "size 9", "2*n = 10", "`n` = 5 from input `x` dim 1")
    check_one_line_error(cli("run", derived_program, "-i", "x=float32[2,17]", "-i", "y=float32[2,34]"),
                         "`x` dim 1", "size 17", "`n` [1, 16]")
    model = pt2kit.load(derived_program)
    with pytest.raises(pt2kit.InputMismatchError, match=r"input `y` dim 1 has size 7, but the artifact needs 2\*n = 6"):
        model(torch.randn(2, 3), torch.randn(2, 7))
    x, y = torch.randn(2, 16), torch.randn(2, 32)
    torch.testing.assert_close(model(x, y), torch.cat([x, x], 1) + y)
