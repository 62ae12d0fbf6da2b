"""pt2kit verify: the artifact against the eager model, every output leaf, across the dynamic range."""

from __future__ import annotations

import math

import pytest
import torch

import pt2kit
from conftest import case, check_one_line_error
from pt2kit.errors import UsageError
from pt2kit.artifact.manifest import DimRange, LeafSpec, Manifest
from pt2kit.verify.outputs import verify_outputs
from pt2kit.verify.cases import HUGE_SIZE, max_tested_size, plan_cases
from pt2kit.verify.compare import MismatchKind, Tolerance, compare_leaf, default_tolerance


def export(name: str, tmp_path, attr: str = "model", **options):
    """Export `tests/cases/NAME.py:ATTR` (dynamic dims from the file) without the specialization re-trace."""
    out = tmp_path / f"{name}_{attr}.pt2"
    pt2kit.export_program(pt2kit.load_target(f"{case(name)}:{attr}"), out, check_specialization=False, **options)
    return out


@pytest.fixture(scope="module")
def nested_program(tmp_path_factory):
    return export("verify_nested", tmp_path_factory.mktemp("nested"))


def test_a_correct_program_passes_at_its_minimum_and_maximum_sizes(linear_program):
    report = verify_outputs(pt2kit.load_target(f"{case('linear_relu')}:model"), linear_program, samples=4, seed=3)
    assert report.ok, report
    sizes = [dict(c.sizes)["batch"] for c in report.cases]
    assert sizes[:3] == [8, 1, 64]  # the example, then the range's ends
    assert all(1 <= s <= 64 for s in sizes) and len(report.cases) == 5
    text = str(report)
    assert "min sizes (batch=1)" in text and "max sizes (batch=64)" in text and "✓ output:" in text
    (check,) = report.outputs
    assert check.passed and check.reason is None and check.max_abs_err <= check.tolerance.atol


def test_other_weights_fail_naming_each_output(tmp_path, cli):
    artifact = export("verify_weights", tmp_path, attr="retrained")
    result = cli("verify", f"{case('verify_weights')}:model", artifact, "--samples", "2")
    assert result.code == 1
    assert "✗ output['score']" in result.out and "✗ output['label']" in result.out
    assert "verification failed: 2 of 2 outputs differ" in result.out
    assert "elements beyond tolerance" in result.out


def test_nested_outputs_are_compared_leaf_by_leaf(nested_program):
    report = verify_outputs(pt2kit.load_target(f"{case('verify_nested')}:model"), nested_program, samples=2)
    assert report.ok, report
    names = [o.name for o in report.outputs]
    assert names == ["output['logits']", "output['aux'][0]", "output['aux'][1][0]", "output['aux'][1][1]"]
    assert [o.tolerance.atol for o in report.outputs][-1] == 0.0  # the int64 count must be exact
    assert all(o.cases == 3 for o in report.outputs)


def test_nan_positions_must_match(tmp_path):
    target = pt2kit.load_target(f"{case('verify_nan')}:model")
    same = verify_outputs(target, export("verify_nan", tmp_path), samples=2)
    assert same.ok, same  # NaN where x < 0 on both sides: equal positions pass
    differ = verify_outputs(target, export("verify_nan", tmp_path, attr="shifted"), samples=2)
    assert not differ.ok
    (check,) = differ.outputs
    assert {m.kind for m in check.mismatches} == {MismatchKind.NAN}  # the finite values agree
    assert "NaN only in the artifact" in check.reason and len(check.mismatches) == 3


def test_integer_inputs_are_drawn_from_the_recorded_range(tmp_path, cli):
    out = tmp_path / "embed.pt2"
    assert cli("export", f"{case('verify_embedding')}:model", "-o", out, "-i", "ids=int64[2,6]@0..50",
               "--dynamic", "ids:1=seq[1,12]", "-q").code == 0
    (ids,) = pt2kit.load(out).manifest.inputs
    assert ids.value_range == (0, 50)
    report = verify_outputs(pt2kit.load_target(f"{case('verify_embedding')}:model"), out, samples=3)
    assert report.ok, report
    (draw,) = report.draws
    assert (draw.low, draw.high, draw.source) == (0, 50, "the manifest")
    leaves = [c.leaves[0] for c in report.cases[1:]]
    assert all(int(t.min()) >= 0 and int(t.max()) < 50 for t in leaves)
    assert max(int(t.max()) for t in leaves) >= 5  # beyond the example's ids, within the recorded range
    # a range given on the command line wins; ids past the table make the eager model raise, collected per input
    wide = cli("verify", f"{case('verify_embedding')}:model", out, "-i", "ids=int64[2,6]@0..5000", "--samples", "2", "--json")
    assert wide.code == 1
    data = wide.json()
    assert data["inputs"][0]["source"] == "--input" and data["inputs"][0]["high"] == 5000
    assert data["errors"] and all(e["side"] == "eager" for e in data["errors"])


def test_without_a_range_integers_stay_within_the_examples_values():
    manifest = Manifest(inputs=(LeafSpec("ids", "tensor", "int64", (2, "s0")),), outputs=(), dims=(DimRange("s0", "seq", 1, 9),))
    example = torch.tensor([[3, 7, 4], [5, 3, 6]])
    plan = plan_cases(manifest, ["ids"], [example], samples=6, seed=1)
    for c in plan.cases[1:]:
        (t,) = c.leaves
        assert t.dtype == torch.int64 and t.shape[0] == 2 and 1 <= t.shape[1] <= 9
        assert 3 <= int(t.min()) and int(t.max()) <= 7
    assert str(plan.draws[0]) == "ids: int64 integers in [3, 8) (from the example's values)"


def test_shared_and_derived_dims_are_sampled_together():
    manifest = Manifest(
        inputs=(LeafSpec("x", "tensor", "float32", ("s0", "s1")), LeafSpec("y", "tensor", "float32", ("s0", "2*s1 + 1"))),
        outputs=(), dims=(DimRange("s0", "batch", 2, 8), DimRange("s1", "seq", 0, None)),
    )
    example = [torch.randn(4, 3), torch.randn(4, 7)]
    plan = plan_cases(manifest, ["x", "y"], example, samples=6, seed=0)
    assert [str(d) for d in plan.dims] == ["batch in [2, 8]", "seq in [0, inf] (tested up to 64: capped)"]
    for c in plan.cases:
        x, y = c.leaves
        assert x.shape[0] == y.shape[0] and y.shape[1] == 2 * x.shape[1] + 1
    seen = {(x.shape[0], x.shape[1]) for x, _ in (c.leaves for c in plan.cases)}
    assert {(2, 0), (8, 64), (2, 64), (8, 0)} <= seen  # both ends, and mixed
    assert str(plan.cases[1]) == "min sizes (batch=2, seq=0)"


def test_huge_maxima_are_capped():
    assert max_tested_size(DimRange("s0", "seq", 1, 100_000), example_size=128) == 256
    assert max_tested_size(DimRange("s0", "seq", 1, 100_000), example_size=100_000) == HUGE_SIZE
    assert max_tested_size(DimRange("s0", "seq", 1, 512), example_size=8) == 512  # a declared max is tested as is
    assert max_tested_size(DimRange("s0", "seq", 1, 512), example_size=8, max_size=32) == 32


def test_compare_leaf_reports_shape_dtype_nan_inf_and_values():
    tol = Tolerance(1e-5, 1e-4, "test")
    e = torch.tensor([[1.0, float("nan")], [float("inf"), 4.0]])
    assert compare_leaf(e, e.clone(), tol).problems == ()
    kinds = lambda a: [k for k, _ in compare_leaf(e, a, tol).problems]  # noqa: E731
    assert kinds(torch.zeros(2, 3)) == [MismatchKind.SHAPE]
    assert kinds(e.double()) == [MismatchKind.DTYPE]
    assert kinds(torch.tensor([[1.0, 2.0], [float("inf"), 4.0]])) == [MismatchKind.NAN]
    assert kinds(torch.tensor([[1.0, float("nan")], [float("-inf"), 4.0]])) == [MismatchKind.INF]
    off = compare_leaf(e, torch.tensor([[1.0, float("nan")], [float("inf"), 4.01]]), tol)
    assert [k for k, _ in off.problems] == [MismatchKind.VALUES] and "worst at [1, 1]" in off.problems[0][1]
    assert math.isclose(off.max_abs_err, 0.01, rel_tol=1e-3) and off.ratio > 1
    assert compare_leaf(e, e.double(), tol, allow_dtype_change=True).problems == ()


def test_default_tolerances_follow_dtype_device_and_weights():
    assert (default_tolerance(torch.float32, None, "cpu", False).atol, default_tolerance(torch.float32, None, "cpu", False).rtol) == (1e-5, 1e-4)
    assert default_tolerance(torch.float32, "bfloat16", "cpu", False).basis == "bfloat16 on cpu"  # a bf16 model's fp32 output
    assert default_tolerance(torch.float32, None, "cuda", True).basis == "float32 with TF32"
    assert default_tolerance(torch.int64, None, "cpu", False).atol == 0.0


def test_models_that_mutate_their_inputs_get_a_copy_per_call(tmp_path):
    report = verify_outputs(pt2kit.load_target(f"{case('verify_mutates_input')}:model"), export("verify_mutates_input", tmp_path), samples=2)
    assert report.ok, report


def test_json_is_one_document_and_overrides_apply(cli, nested_program):
    result = cli("verify", f"{case('verify_nested')}:model", nested_program, "--samples", "2", "--atol", "0.5", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["ok"] is True and data["kind"] == "program" and data["device"] == "cpu"
    assert [c["label"] for c in data["cases"]] == ["example", "min sizes", "max sizes"]
    assert data["cases"][2]["sizes"] == {"batch": 32} and data["dims"][0]["tested_max"] == 32
    first = data["outputs"][0]
    assert set(first) >= {"name", "passed", "max_abs_err", "max_rel_err", "worst_input", "reason", "atol", "rtol", "mismatches"}
    assert (first["atol"], first["tolerance_basis"]) == (0.5, "--atol/--rtol")
    assert all(o["atol"] == 0.5 for o in data["outputs"])


def test_export_verify_writes_only_a_verified_program(cli, tmp_path):
    good = tmp_path / "good.pt2"
    result = cli("export", f"{case('verify_nested')}:model", "-o", good, "--verify", "--samples", "2", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["ok"] and data["verify"]["ok"] and data["path"] == str(good) and good.is_file()

    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"an earlier file")
    result = cli("export", f"{case('verify_stateful')}:model", "-o", bad, "--verify", "--samples", "1", "--no-specialization-check")
    assert result.code == 1
    assert "✗ output:" in result.out and "was not written" in result.err
    assert bad.read_bytes() == b"an earlier file"  # never replaced by the unverified program
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bad")] == []  # no temporary left behind


def test_usage_errors_are_one_line(cli, linear_program):
    check_one_line_error(cli("verify", f"{case('verify_nested')}:model", linear_program), "artifact takes (input)")
    with pytest.raises(UsageError, match="--samples -1"):  # the CLI refuses it while parsing (tests/test_bad_inputs.py)
        verify_outputs(pt2kit.load_target(f"{case('linear_relu')}:model"), linear_program, samples=-1)


@pytest.mark.slow
def test_an_aotinductor_package_passes_and_compile_verify_checks_it(cli, small_aoti_package, linear_program, tmp_path):
    report = verify_outputs(pt2kit.load_target(f"{case('linear_relu')}:model"), small_aoti_package, samples=4)
    assert report.ok, report
    assert (report.kind, report.device) == ("aoti", "cpu")
    assert {dict(c.sizes)["batch"] for c in report.cases} >= {1, 64}
    # compile --verify of the same program (a build-cache hit) checks the package against the .pt2 program itself
    out = tmp_path / "checked.aoti.pt2"
    result = cli("compile", linear_program, "-o", out, "--verify", "--samples", "2", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert data["verify"]["ok"] and data["verify"]["kind"] == "aoti" and out.is_file()


@pytest.mark.parametrize("transform", ["dtype", "channels_last"])
def test_a_reexported_program_keeps_the_declared_value_ranges(tmp_path, cli, transform):
    """`--dtype` (compile) and channels_last (tune) export the program again; the manifest they rebuild keeps each
    input's declared range, so `verify` of what they build still draws ids from it, not from the example's."""
    from pt2kit.artifact.package import load_program, read_manifest
    from pt2kit.compile.dtype import DType, convert_program
    from pt2kit.tune.layout import to_channels_last

    out = tmp_path / "embed.pt2"
    assert cli("export", f"{case('verify_embedding')}:model", "-o", out, "-i", "ids=int64[2,6]@0..50",
               "--dynamic", "ids:1=seq[1,12]", "-q").code == 0
    program, manifest = load_program(out), read_manifest(out)
    if transform == "dtype":
        _, rebuilt = convert_program(program, manifest, DType.BF16)
    else:
        _, rebuilt = to_channels_last(program, manifest)
    (ids,) = rebuilt.inputs
    assert ids.value_range == (0, 50)
    assert [(d.name, d.min, d.max) for d in rebuilt.dims] == [(d.name, d.min, d.max) for d in manifest.dims]


@pytest.mark.slow
def test_a_package_verifies_against_the_pt2_program_it_was_compiled_from(cli, small_aoti_package, linear_program):
    result = cli("verify", linear_program, small_aoti_package, "--samples", "2", "--json")
    assert result.code == 0, result.out
    doc = result.json()
    assert doc["ok"] and doc["target"] == str(linear_program) and len(doc["cases"]) == 3
    check_one_line_error(cli("verify", linear_program, small_aoti_package, "--input", "input=float32[2,16]"),
                         "example inputs it holds")
