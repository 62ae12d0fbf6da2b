"""The seed notebook, cell by cell, through pt2kit (docs/seed-walkthrough.md)."""

import torch

import pt2kit
from conftest import case, check_one_line_error

SEED = case("seed")


def test_untraceable_module_names_the_users_line_and_cause(cli, tmp_path):
    # notebook: `x.item()` on a 10x10 tensor; torch.export points into dynamo internals
    result = cli("export", f"{SEED}:untraceable", "-o", tmp_path / "m.pt2")
    assert result.code == 1
    assert "fails when run eagerly" in result.err
    assert "seed.py:8 in forward" in result.err and "`if x.item() > 0:`" in result.err
    assert "a Tensor with 100 elements cannot be converted to Scalar" in result.err


def test_shape_conditioned_model_says_what_was_specialized(cli, tmp_path):
    result = cli("export", f"{SEED}:ConditionalModel", "-i", "x=float32[10,2]", "-o", tmp_path / "c.pt2", "--json")
    assert result.code == 0
    (spec,) = result.json()["specializations"]
    assert spec["condition"] == "x.shape[0] > 5"
    assert spec["location"]["line"] == 19 and spec["sizes"] == {"x.shape[0]": 10}
    text = cli("export", f"{SEED}:ConditionalModel", "-i", "x=float32[10,2]", "-o", tmp_path / "c.pt2").out
    assert "decided once, at export, with x.shape[0]=10" in text
    # the program only accepts the example's size, so the baked-in side is never wrong silently
    check_one_line_error(cli("run", tmp_path / "c.pt2", "-i", "x=float32[3,2]"), "dim 0 has size 3, expected 10")


def test_in_place_model_exports_in_both_modes(cli, tmp_path):
    for mode in ("strict", "non-strict"):
        out = tmp_path / f"{mode}.pt2"
        result = cli("export", f"{SEED}:InPlaceOperationModel", "-i", "x=float32[3,3]", "-o", out, "--mode", mode, "--json")
        assert result.code == 0 and result.json()["capture"]["mode"] == mode
        x = torch.ones(3, 3)
        assert torch.equal(pt2kit.load(out)(x.clone()), torch.full((3, 3), 2.0))


def test_dynamic_batch_model_runs_at_several_batch_sizes(cli, tmp_path):
    out = tmp_path / "d.pt2"
    assert cli("export", f"{SEED}:DynamicShapeModel", "-i", "x=float32[32,64]", "-o", out, "--dynamic", "x:0=batch").code == 0
    model = pt2kit.load(out)
    (batch,) = model.manifest.dims
    assert batch.name == "batch" and batch.max is None
    for n in (1, 7, 128):
        x = torch.randn(n, 64)
        assert torch.equal(model(x), x + 1)


def test_save_and_load_with_plain_torch(cli, tmp_path):
    out = tmp_path / "simple.pt2"
    # an unnamed --input is positional, as the notebook's `export(SimpleModel(), (x,))`
    assert cli("export", f"{SEED}:make_simple", "-i", "float32[5]", "-o", out).code == 0
    loaded = torch.export.load(out)
    x = torch.randn(5)
    assert torch.equal(loaded.module()(x), x + 10)
    assert "aten.add.Tensor" in str(loaded.graph)
    # a named one is a keyword input, as `export(SimpleModel(), (), {"x": x})`
    assert cli("export", f"{SEED}:make_simple", "-i", "x=float32[5]", "-o", out).code == 0
    assert torch.equal(torch.export.load(out).module()(x=x), x + 10)


def test_end_point_aotinductor_package_runs_without_python_source(cli, small_aoti_package, linear_program, tmp_path):
    # notebook's last cell: torch._inductor.aoti_compile_and_package, then aoti_load_package and call
    # (the session fixture built the same program, so this build is a cache hit)
    package = tmp_path / "linear.aoti.pt2"
    built = cli("compile", linear_program, "-o", package, "--device", "cpu", "--json")
    assert built.code == 0, built.err
    assert built.json()["path"] == str(package) and built.json()["cached"] is True
    ran = cli("run", package, "-i", "input=float32[7,16]", "--json")
    assert ran.code == 0, ran.err
    assert ran.json()["outputs"][0]["shape"] == [7, 4]
    x = torch.randn(7, 16)
    torch.testing.assert_close(pt2kit.load(package)(x), torch.export.load(linear_program).module()(x))
