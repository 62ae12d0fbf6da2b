"""Repair: torch's suggested fixes applied to the declared dynamic shapes, and the policy on shape branches."""

import pytest
import torch

import pt2kit
from conftest import case, check_one_line_error
from pt2kit.errors import ExportFailed
from pt2kit.capture.shape_branches import is_branch
from pt2kit.shapes.repair import FixKind
from pt2kit.shapes.suggested_fixes import parse_suggested_fixes

SEED = case("seed")


def export(tmp_path, name, dynamic, inputs=None, **options):
    target = pt2kit.load_target(f"{case(name)}:model" if ":" not in name else name, inputs)
    return pt2kit.export_program(target, tmp_path / "m.pt2", dynamic=dynamic, **options)


def test_parse_every_form_of_suggested_fix():
    message = """Constraints violated (b)! For more information, run with TORCH_LOGS="+dynamic".
  - Not all values of b = L['x'].size()[0] ...
Suggested fixes:
  batch = Dim('batch', min=6, max=32)
  seq = Dim('seq', max=16)
  feat = 16
  b2 = b1
  m = 2*n
  a = b + 1
  _b = Dim('_b', min=1, max=32)
  b = 2*_b

The error above occurred when calling torch.export.export."""
    fixes = {f.name: f for f in parse_suggested_fixes(message)}
    assert (fixes["batch"].min, fixes["batch"].max) == (6, 32)
    assert (fixes["seq"].min, fixes["seq"].max) == (None, 16)
    assert fixes["feat"].value == 16
    assert (fixes["b2"].root, fixes["b2"].scale, fixes["b2"].offset) == ("b1", 1, 0)
    assert (fixes["m"].root, fixes["m"].scale) == ("n", 2)
    assert (fixes["a"].root, fixes["a"].offset) == ("b", 1)
    assert (fixes["b"].root, fixes["b"].scale) == ("_b", 2) and fixes["_b"].is_range
    assert parse_suggested_fixes("no fixes here") == []


@pytest.mark.parametrize(
    "code, branch",
    [("if x.shape[0] > 5:", True), ("elif n == 3:", True), ("return a if x.size(0) > 2 else b", True),
     ("assert x.shape[1] == 4", True), ("return self.l(x)", False), ("y = x[: x.shape[0] // 2]", False)],
)
def test_is_branch(code, branch):
    assert is_branch(code) is branch


def test_dim_fixed_by_a_weight_is_made_static(tmp_path):
    result = export(tmp_path, "dyn_weight_sized_dim", "x:0=batch[1,64],x:1=feat")
    (fix,) = result.shape_repair.repairs
    assert fix.kind is FixKind.SPECIALIZE and fix.applied and fix.dim == "feat" and "16" in fix.after
    assert str(result.shape_repair.final) == "x:0=batch[1,64]"
    assert "dynamic_shapes = {'x': {0: batch}}" in str(result)
    assert any("feat" in n for n in result.manifest.notes)
    model = pt2kit.load(result.path)
    x = torch.randn(5, 16)
    torch.testing.assert_close(model(x), pt2kit.load_target(f"{case('dyn_weight_sized_dim')}:model").module(x))


def test_structural_range_limit_is_narrowed_and_checked_at_run(tmp_path, cli):
    result = export(tmp_path, "dyn_position_table", "x:0=seq[2,64]")
    (fix,) = result.shape_repair.repairs
    assert fix.kind is FixKind.NARROW and fix.applied and fix.after == "[2, 16]"
    assert [(d.name, d.min, d.max) for d in result.manifest.dims] == [("seq", 2, 16)]
    assert cli("run", result.path, "-i", "x=float32[16,3]").code == 0
    check_one_line_error(cli("run", result.path, "-i", "x=float32[17,3]"), "`x` dim 0", "size 17", "`seq` [2, 16]")


def test_independent_dims_the_model_relates_become_derived(tmp_path):
    result = export(tmp_path, "dyn_concat_self", "x:1=n[1,16],y:1=m")
    (fix,) = result.shape_repair.repairs
    assert fix.kind is FixKind.RELATE and fix.after == "2*n"
    assert str(result.shape_repair.final) == "x:1=n[1,16],y:1=2*n"
    (relation,) = result.manifest.relations
    assert (relation.input, relation.dim, relation.named) == ("y", 1, "2*n")


def test_new_root_from_torch_for_an_even_size(tmp_path):
    result = export(tmp_path, "dyn_even_reshape", "x:0=b[2,64]")
    assert str(result.shape_repair.final) == "x:0=2*_b[1,32]"
    model = pt2kit.load(result.path)
    assert model(torch.randn(10, 3)).shape == (5, 3)
    with pytest.raises(pt2kit.InputMismatchError, match="size 7, but it must be 2\\*_b"):
        model(torch.randn(7, 3))


def test_two_declared_dims_that_must_be_equal_share_the_tighter_range(tmp_path):
    result = export(tmp_path, "dyn_add_pair", "x:0=b1[1,64],y:0=b2[1,32]")
    assert str(result.shape_repair.final) == "x:0=b1[1,32],y:0=b1"
    (dim,) = result.manifest.dims
    assert (dim.name, dim.max, dim.used_by) == ("b1", 32, ("x:0", "y:0"))


def test_size_one_example_is_resized_and_the_declared_range_kept(tmp_path):
    inputs = [pt2kit.parse_input("input=float32[1,16]")]
    result = export(tmp_path, "linear_relu", "input:0=batch[1,64]", inputs)
    (fix,) = result.shape_repair.repairs
    assert fix.kind is FixKind.RESIZE_EXAMPLE and "re-traced with 2" in fix.reason and "[1, 64]" in fix.reason
    assert result.shape_repair.example_shapes == {"input": (2, 16)}
    assert [(d.min, d.max) for d in result.manifest.dims] == [(1, 64)]
    model, eager = pt2kit.load(result.path), pt2kit.load_target(f"{case('linear_relu')}:model").module
    for batch in (1, 2, 33):
        x = torch.randn(batch, 16)
        torch.testing.assert_close(model(x), eager(x))


def test_shared_size_one_dim_resizes_every_input_that_uses_it(tmp_path):
    inputs = [pt2kit.parse_input("x=float32[1,3]"), pt2kit.parse_input("y=float32[1,3]")]
    result = export(tmp_path, "dyn_add_pair", "x:0=b[1,8],y:0=b", inputs)
    assert result.shape_repair.example_shapes == {"x": (2, 3), "y": (2, 3)}
    assert pt2kit.load(result.path)(torch.ones(1, 3), torch.ones(1, 3)).shape == (1, 3)


def test_shape_branch_narrowing_is_not_applied_and_both_ways_out_are_given(tmp_path):
    target = pt2kit.load_target(f"{SEED}:ConditionalModel")
    with pytest.raises(ExportFailed) as info:
        pt2kit.export_program(target, tmp_path / "c.pt2", dynamic="x:0=batch[2,32]")
    message = str(info.value)
    assert "if x.shape[0] > 5:" in message and "--fix" in message
    assert "--dynamic x:0=batch[6,32]" in message and "batch = Dim('batch', min=6, max=32)" in message
    assert not (tmp_path / "c.pt2").exists()


def test_shape_branch_at_the_cli_exits_1_with_the_advice(cli, tmp_path):
    result = cli("export", f"{SEED}:ConditionalModel", "-o", tmp_path / "c.pt2", "--dynamic", "x:0=batch[2,32]", "--json")
    assert result.code == 1
    data = result.json()
    assert data["ok"] is False and "x:0=batch[6,32]" in data["error"]


def test_no_repair_fails_as_torch_does(tmp_path, cli):
    with pytest.raises(ExportFailed) as info:
        export(tmp_path, "dyn_weight_sized_dim", "x:1=feat", repair=False)
    assert "feat = 16" in str(info.value)
    out = tmp_path / "n.pt2"
    result = cli("export", f"{case('dyn_weight_sized_dim')}:model", "-o", out, "--dynamic", "x:1=feat", "--no-repair")
    assert result.code == 1 and not out.exists()


def test_repair_is_reported_in_json(cli, tmp_path):
    result = cli("export", f"{case('dyn_concat_self')}:model", "-o", tmp_path / "c.pt2", "--dynamic", "x:1=n,y:1=m", "--json")
    assert result.code == 0
    repair = result.json()["shape_repair"]
    assert (repair["declared"], repair["final"]) == ("x:1=n,y:1=m", "x:1=n,y:1=2*n")
    assert repair["repairs"][0]["kind"] == "relate"
    scope: dict = {}
    exec(repair["final_code"], scope)  # paste-able
    assert scope["dynamic_shapes"]["y"][1].root is scope["n"]


def test_a_spec_that_needs_no_repair_reports_none(tmp_path):
    result = export(tmp_path, "dyn_concat_self", None)  # the file's own `dynamic`: x:1=n[1,16],y:1=2*n
    assert result.shape_repair is None
    assert [(d.name, d.min, d.max) for d in result.manifest.dims] == [("n", 1, 16)]


def test_with_fix_the_declared_range_is_kept_and_both_sides_are_right(tmp_path):
    target = pt2kit.load_target(f"{SEED}:ConditionalModel")
    result = pt2kit.export_program(target, tmp_path / "c.pt2", dynamic="x:0=batch[2,32]", fix=True)
    assert [(d.name, d.min, d.max) for d in result.manifest.dims] == [("batch", 2, 32)]
    assert result.shape_repair is None  # nothing narrowed: the branch is a torch.cond now
    model = pt2kit.load(result.path)
    for batch in (2, 5, 6, 32):
        x = torch.randn(batch, 10)
        torch.testing.assert_close(model(x), x + 1 if batch > 5 else x - 1)


def test_constant_from_an_equality_branch_in_a_submodule_is_not_applied(tmp_path):
    with pytest.raises(ExportFailed) as info:
        export(tmp_path, "dyn_equality_branch", "x:0=batch[2,16],x:1=feat[2,64]")
    message = str(info.value)
    assert "NOT applied: specialize `feat`" in message and "if x.shape[1] == 8:" in message
    assert "--dynamic x:0=batch[2,16]" in message  # the spec with feat static, offered, not applied
