"""`pt2kit migrate`: TorchScript archives (tests/migrate_cases, one tiny model per file) -> verified .pt2 programs."""

from __future__ import annotations

import json
import textwrap
import warnings

import pytest
import torch

import pt2kit
from migrate_cases import CASES, build_archive, load_case
from pt2kit.migrate import Strategy, migrate_model
from pt2kit.target.inputs import parse_input


def _migrate(case, tmp_path, **options):
    archive = build_archive(case, tmp_path / "model.pt")
    return archive, migrate_model(archive, tmp_path / "model.pt2", inputs=[parse_input(s) for s in case.inputs],
                                  dynamic=getattr(case, "dynamic", None), verify=True, samples=3, **options)


@pytest.mark.parametrize("name", CASES)
def test_case_converts_with_the_expected_strategy_and_matches(name, tmp_path):
    case = load_case(name)
    archive, result = _migrate(case, tmp_path)
    assert (result.strategy.value if result.strategy else None) == case.expect, result
    if case.expect is None:
        assert not result.ok and not (tmp_path / "model.pt2").exists()
        return
    assert result.ok and result.path.is_file(), result
    assert result.verification.ok and len(result.verification.cases) == 4
    # the written program, loaded without the model's source, gives the scripted model's outputs
    scripted = torch.jit.load(str(archive))
    program = pt2kit.load(result.path)
    example, _ = program.program.example_inputs
    args = tuple(a + torch.randn_like(a) if a.is_floating_point() else a for a in example)
    with torch.no_grad():
        torch.testing.assert_close(program(*args), scripted(*args))


def test_scripted_if_becomes_torch_cond_and_both_sides_are_verified(tmp_path):
    _, result = _migrate(load_case("m01_branch_on_sum"), tmp_path)
    graph = str(result.program.graph)
    assert "torch.ops.higher_order.cond" in graph
    sides = {(b.condition.reduction, b.side): b for b in result.branches}
    assert set(sides) == {("sum", True), ("sum", False)}
    for check in sides.values():
        assert check.report is not None and check.report.ok, check
        assert check.condition.location.line == 14 and "x.sum() > 0" in check.condition.location.code
    assert [d.name for d in result.manifest.dims] == ["batch"]


def test_loop_over_a_size_is_specialized_and_the_count_reported(tmp_path):
    _, result = _migrate(load_case("m02_loop_over_rows"), tmp_path)
    ts2ep, specialize = result.attempts
    assert not ts2ep.ok and ts2ep.blockers[0].location.line == 9
    assert "for i in range(x.shape[0])" in ts2ep.blockers[0].location.code
    assert specialize.ok and any("runs 3 times" in n for n in specialize.notes)
    assert result.manifest.inputs[0].shape == (3, 5) and not result.manifest.dims
    assert any("runs 3 times" in n for n in result.manifest.notes)


def test_branch_after_a_size_loop_is_kept_as_cond(tmp_path):
    _, result = _migrate(load_case("m03_loop_then_branch"), tmp_path)
    assert result.strategy is Strategy.SPECIALIZE
    assert "torch.ops.higher_order.cond" in str(result.program.graph)
    # `y.mean()` reads an intermediate, not an input: pt2kit says it is covered only by random inputs
    assert len(result.conditions) == 1 and not result.conditions[0].steerable
    assert "covered only by the random inputs" in str(result)


def test_traced_archive_supplies_its_input_shapes(tmp_path):
    _, result = _migrate(load_case("m04_traced_convnet"), tmp_path)
    assert "traced input shapes (images=float32[2,3,16,16])" in result.inputs_from
    assert result.manifest.inputs[0].shape == (2, 3, 16, 16)


def test_methods_and_attributes_that_do_not_survive_are_listed(tmp_path):
    _, result = _migrate(load_case("m05_submodules_and_methods"), tmp_path)
    assert any("method `predict(Tensor x) -> Tensor`" in d for d in result.dropped)
    extra = result.manifest.extra["migrate"]
    assert extra["attributes"]["scale"] == 0.5 and extra["attributes"]["labels"][0] == "cat"
    assert "blocks.0.fc" in extra["submodules"]
    assert extra["methods_dropped"] == ["predict(Tensor x) -> Tensor"]
    assert any("--method predict" in d for d in result.dropped)


def test_another_method_migrates_to_its_own_program(cli, tmp_path):
    case = load_case("m05_submodules_and_methods")
    archive = build_archive(case, tmp_path / "m.pt")
    result = migrate_model(archive, tmp_path / "predict.pt2", method="predict", inputs=[parse_input("x=float32[3,6]")],
                           dynamic="x:0=batch[1,16]", verify=True, samples=2)
    assert result.ok and result.verification.ok, result
    assert result.manifest.outputs[0].dtype == "int64" and result.manifest.extra["migrate"]["method"] == "predict"
    assert any("method `forward(Tensor x) -> Tensor`" in d for d in result.dropped)
    x = torch.randn(5, 6)
    torch.testing.assert_close(pt2kit.load(result.path)(x), torch.jit.load(str(archive)).predict(x))
    r = cli("migrate", archive, "-o", tmp_path / "x.pt2", "--method", "nope", "-i", "x=float32[3,6]", "-q")
    assert r.code == 2 and "has no method `nope` (it has: forward, predict)" in r.err


def test_unconvertible_loop_is_reported_at_its_line_in_the_blocker_format(tmp_path):
    _, result = _migrate(load_case("m06_while_on_values"), tmp_path)
    assert [a.ok for a in result.attempts] == [False, False, False]
    (blocker,) = result.blockers
    assert blocker.location.file.endswith("m06_while_on_values.py") and blocker.location.line == 8
    assert blocker.location.code == "while bool(x.abs().max() > 1.0):"
    assert "while_loop" in blocker.fix and str(blocker.kind) == "data_dependent_branch"


def test_size_branch_that_the_converter_fixes_is_said_so(tmp_path):
    _, result = _migrate(load_case("m07_size_branch"), tmp_path)
    assert not result.manifest.dims  # the converter decided `x.size(0) > 4` at the example's size
    assert any("shape repair" in n and "static 6" in n for n in result.attempts[-1].notes)
    assert all(b.report is None and "static" in b.reason for b in result.branches)


@pytest.mark.parametrize("reduction, op, threshold", [("sum", "gt", 0.0), ("mean", "le", 0.5), ("max", "gt", 3.0),
                                                     ("min", "lt", -2.0), ("sum", "ge", 100.0)])
def test_value_conditions_are_steered_to_each_side(reduction, op, threshold):
    from pt2kit.capture.capture import SourceLocation
    from pt2kit.migrate.branches import BranchCondition, steer

    cond = BranchCondition(SourceLocation("m.py", 3), "x", reduction, op, threshold)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    for side in (True, False):
        (steered,) = steer(cond, (x,), ("x",), side, {})
        value = getattr(steered, reduction)().item()
        assert cond.holds(value) == side and steered.shape == x.shape


def test_size_branch_is_steered_when_the_dim_is_dynamic():
    from pt2kit.capture.capture import SourceLocation
    from pt2kit.migrate.branches import BranchCondition, steer

    cond = BranchCondition(SourceLocation("m.py", 3), "x", "size", "gt", 4.0, 0)
    x = torch.randn(6, 3)
    taken = {side: steer(cond, (x,), ("x",), side, {("x", 0): (1, 16)}) for side in (True, False)}
    assert taken[True][0].shape[0] > 4 >= taken[False][0].shape[0]
    assert steer(cond, (x,), ("x",), True, {}) is None  # static dim: cannot be steered


def test_archive_without_its_source_still_points_at_the_code(tmp_path):
    source = tmp_path / "gone.py"
    source.write_text(textwrap.dedent("""
        import torch

        class Halve(torch.nn.Module):
            def forward(self, x):
                while bool(x.max() > 1.0):
                    x = x * 0.5
                return x
    """))
    import importlib.util

    spec = importlib.util.spec_from_file_location("gone", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(module.Halve()), str(tmp_path / "halve.pt"))
    source.unlink()
    result = migrate_model(tmp_path / "halve.pt", tmp_path / "out.pt2", inputs=[parse_input("x=float32[3]")])
    blocker = result.blockers[0]
    assert blocker.location.line == 6 and blocker.location.code == "while bool(x.max() > 1.0):"


def test_cli_migrates_and_prints_one_json_document(cli, tmp_path):
    archive = build_archive(load_case("m01_branch_on_sum"), tmp_path / "m.pt")
    out = tmp_path / "m.pt2"
    r = cli("migrate", archive, "-o", out, "--input", "x=float32[4,8]", "--dynamic", "x:0=batch[1,32]", "--json", "-q")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["ok"] and doc["strategy"] == "ts2ep" and doc["manifest"]["dims"][0]["name"] == "batch"
    assert out.is_file() and r.err == ""
    run = cli("run", out, "--input", "x=float32[7,8]", "--json", "-q")
    assert run.code == 0 and run.json()["outputs"][0]["shape"] == [7, 8], run.err


def test_cli_failure_exits_1_and_writes_nothing(cli, tmp_path):
    archive = build_archive(load_case("m06_while_on_values"), tmp_path / "m.pt")
    r = cli("migrate", archive, "-o", tmp_path / "m.pt2", "--input", "x=float32[4]", "-q")
    assert r.code == 1 and "m06_while_on_values.py:8" in r.out and "was not written" in r.err
    assert not (tmp_path / "m.pt2").exists()


@pytest.mark.parametrize("args, message", [
    (["nothing.pt"], "does not exist"),
    (["{pt2}"], "is not a TorchScript archive"),
    (["{pt}"], "records no example inputs"),
    (["{pt}", "--input", "x=float32[4,3]"], "the scripted model fails on the example inputs"),
    (["{pt}", "--input", "y=float32[4,8]"], "has no parameter `y`"),
    (["{pt}", "--input", "x=float32[4,8]", "--dynamic", "x:0=batch[1"], "--dynamic"),
    (["{pt}", "--input", "x=float32[4,8]", "--dynamic", "y:0=batch[1,8]"], "`y`"),
    (["{pt}", "--input", "x=float32[4,8]", "-o", "no/such/dir/out.pt2"], "output folder"),
])
def test_cli_bad_input_is_one_line_and_exit_2(cli, tmp_path, args, message):
    pt = build_archive(load_case("m01_branch_on_sum"), tmp_path / "m.pt")
    pt2 = tmp_path / "not_ts.pt2"
    pt2.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    argv = [a.format(pt=pt, pt2=pt2) for a in args]
    output = ["-o", tmp_path / "out.pt2"] if "-o" not in argv else []
    r = cli("migrate", *argv, *output, "-q")
    assert r.code == 2, (r.out, r.err)
    assert message in r.err and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert not (tmp_path / "out.pt2").exists()


def test_scripted_and_migrated_modules_are_targets_for_verify(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build_archive(load_case("m01_branch_on_sum"), tmp_path / "m.pt")
    assert cli("migrate", "m.pt", "-o", "m.pt2", "-i", "x=float32[4,8]", "--dynamic", "x:0=batch[1,32]", "-q").code == 0
    (tmp_path / "scripted.py").write_text("import torch\nfrom pt2kit.migrate import scripted_module\n"
                                          "model = scripted_module('m.pt')\nexample_args = (torch.randn(4, 8),)\n")
    (tmp_path / "migrated.py").write_text("from pt2kit.migrate import migrated_module\n"
                                          "model, example_args = migrated_module('m.pt2')\n")
    r = cli("verify", "scripted.py:model", "m.pt2", "--samples", "3", "--json", "-q")
    assert r.code == 0 and r.json()["ok"], r.out
    r = cli("verify", "migrated.py:model", "m.pt2", "--samples", "2", "--json", "-q")
    assert r.code == 0 and r.json()["ok"], r.out
