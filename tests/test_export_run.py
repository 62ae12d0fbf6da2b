"""export -> inspect -> run through the CLI, and the manifest contract."""

import sys

import pytest
import torch
from safetensors.torch import load_file

import pt2kit
from conftest import case, check_one_line_error, run_subprocess


def test_export_writes_a_plain_pt2_with_a_manifest(linear_program):
    ep = torch.export.load(linear_program)  # plain torch reads it
    assert ep.module()(torch.randn(3, 16)).shape == (3, 4)
    manifest = pt2kit.inspect_artifact(linear_program).manifest
    (x,) = manifest.inputs
    assert (x.name, x.dtype, x.shape[1]) == ("input", "float32", 16)
    (batch,) = manifest.dims
    assert (batch.name, batch.min, batch.max) == ("batch", 1, 64)
    assert manifest.capture_mode == "non-strict" and len(manifest.weights_sha256) == 64
    assert manifest.parameter_count == 16 * 32 + 32 + 32 * 4 + 4


def test_export_json_is_one_document(cli, tmp_path):
    result = cli("export", f"{case('linear_relu')}:model", "-o", tmp_path / "m.pt2", "--json")
    assert result.code == 0
    data = result.json()
    assert data["ok"] and data["capture"]["mode"] == "non-strict"
    assert data["manifest"]["inputs"][0]["shape"] == [8, 16]


def test_inspect_reports_ops_and_params(cli, linear_program):
    result = cli("inspect", linear_program, "--json")
    data = result.json()
    assert data["kind"] == "program"
    assert data["ops"]["aten.linear.default"] == 2
    text = cli("inspect", linear_program, "--graph").out
    assert "batch (s" in text and "aten.linear.default" in text and "def forward" in text


def test_run_checks_ranges_and_writes_outputs(cli, linear_program, tmp_path):
    out = tmp_path / "y.safetensors"
    result = cli("run", linear_program, "--input", "input=float32[5,16]", "--out", out)
    assert result.code == 0, result.err
    assert load_file(str(out))["output"].shape == (5, 4)
    check_one_line_error(cli("run", linear_program, "-i", "input=float32[80,16]"), "`input` dim 0", "size 80", "[1, 64]")
    check_one_line_error(cli("run", linear_program, "-i", "input=float32[5,15]"), "`input` dim 1", "expected 16")
    check_one_line_error(cli("run", linear_program, "-i", "input=float16[5,16]"), "dtype float16", "expected float32")
    check_one_line_error(cli("run", linear_program, "-i", "input=float32[5]"), "has 1 dims")


def test_nested_inputs_outputs_and_kwargs_round_trip(cli, tmp_path):
    out = tmp_path / "two.pt2"
    assert cli("export", f"{case('two_inputs_dict_out')}:model", "-o", out, "--dynamic", "x:0=batch[1,8],mask:0=batch").code == 0
    manifest = pt2kit.inspect_artifact(out).manifest
    assert [leaf.name for leaf in manifest.inputs] == ["x", "mask", "scale"]
    assert [leaf.name for leaf in manifest.outputs] == ["output['hidden']", "output['pair'][0]", "output['pair'][1]"]
    model = pt2kit.load(out)
    got = model(torch.randn(3, 5, 6), torch.ones(3, 5), scale=2.0)
    assert got["hidden"].shape == (3, 5, 6)
    with pytest.raises(pt2kit.InputMismatchError, match="`batch` is 3"):
        model(torch.randn(3, 5, 6), torch.ones(4, 5), scale=2.0)
    with pytest.raises(pt2kit.InputMismatchError, match="fixed to 2.0"):
        model(torch.randn(3, 5, 6), torch.ones(3, 5), scale=3.0)


def test_run_in_a_fresh_process_never_imports_the_source(linear_program, tmp_path):
    # the model's file is gone: run must not need it
    code = (
        "import sys, pt2kit.cli as c; rc = c.main(['run', sys.argv[1], '-i', 'input=float32[2,16]', '-q']);"
        "assert not [m for m in sys.modules if m.startswith('pt2kit_target_')]; raise SystemExit(rc)"
    )
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code, str(linear_program)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "output: float32[2, 4]" in proc.stdout


def test_console_script_entry_point(linear_program):
    result = run_subprocess("inspect", linear_program)
    assert result.code == 0 and "batch" in result.out


def test_varargs_forward_keeps_every_input(cli, tmp_path):
    out = tmp_path / "va.pt2"
    assert cli("export", f"{case('varargs_sum')}:model", "-o", out).code == 0
    model = pt2kit.load(out)
    assert [leaf.name for leaf in model.manifest.inputs] == ["args[0]", "args[1]"]
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    assert torch.allclose(model(a, b), a + b)
