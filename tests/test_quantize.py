"""Lower precision and quantization keep the model's calling contract; `--quantize` schemes proven through AOTInductor.

One tune of a small CNN with a linear head (`tests/cases/conv_head.py`) builds one package of every CPU candidate
kind that changes the precision or the layout (bf16, bf16 channels_last, int8-dynamic, int8-static,
int8-weight-only) and keeps them; every test below reuses those five builds. A float32 caller must be able to call each of them (issue 23
point 7), through `pt2kit.load` and plain `torch._inductor.aoti_load_package`.
"""

from __future__ import annotations

import copy

import sys

import pytest
import torch

import pt2kit
from conftest import case, check_one_line_error
from pt2kit.artifact.package import read_manifest
from pt2kit.compile.quantize import SCHEMES, linear_modules, quantize_program
from pt2kit.errors import ExportFailed
from pt2kit.tune import plan_candidates

KINDS = ("default-bf16", "default-bf16-cl", "default-int8-dynamic", "default-int8-static", "default-int8-weight-only")


@pytest.fixture(scope="session")
def kept(build_cache_dir, tmp_path_factory):
    """`pt2kit tune` of conv_head with every precision kind, each package kept; (folder, JSON report)."""
    import contextlib
    import io
    import json

    from pt2kit import progress
    from pt2kit.cli import main

    folder = tmp_path_factory.mktemp("quant")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["tune", f"{case('conv_head')}:model", "-o", str(folder / "tuned.pt2"), "--recipes", "default",
                     "--dtypes", "bf16,int8", "--atol", "0.2", "--rtol", "0.2", "--iters", "3", "--samples", "1",
                     "--keep", str(folder), "--json", "-q"])
    progress.set_quiet(False)
    assert code == 0, buffer.getvalue()
    return folder, json.loads(buffer.getvalue())


@pytest.mark.slow
def test_every_candidate_kind_takes_and_returns_float32(kept):
    folder, report = kept
    assert [c["name"] for c in report["candidates"]] == list(KINDS)
    assert all(c["ok"] for c in report["candidates"]), report["candidates"]
    eager = pt2kit.load_target(f"{case('conv_head')}:model").module
    x = torch.randn(3, 3, 8, 8)  # another batch than the example's 4: the contract's dynamic batch holds
    expected = eager(x)
    for name in KINDS:
        path = folder / f"{name}.aoti.pt2"
        manifest = read_manifest(path)
        assert [manifest.describe(leaf) for leaf in manifest.inputs] == ["images: float32[batch, 3, 8, 8]"], name
        for model in (pt2kit.load(path), torch._inductor.aoti_load_package(str(path))):
            y = model(x)
            y = y[0] if isinstance(y, list) else y
            assert y.dtype == torch.float32, name
            torch.testing.assert_close(y, expected, atol=0.1, rtol=0.1)


@pytest.mark.slow
def test_the_manifest_records_the_scheme_and_inspect_shows_it(kept, cli):
    folder, report = kept
    for scheme in ("int8-dynamic", "int8-static", "int8-weight-only"):
        path = folder / f"default-{scheme}.aoti.pt2"
        q = read_manifest(path).extra["quantization"]
        assert q["scheme"] == scheme and q["modules"] == ["fc1", "fc2"]  # the convolution stays float
        assert q["torchao_version"] == __import__("torchao").__version__
        shown = cli("inspect", path)
        assert shown.code == 0 and f"quant   {scheme} ({q['method']}, torchao {q['torchao_version']})" in shown.out and "fc1, fc2" in shown.out
    by_name = {c["name"]: c for c in report["candidates"]}
    assert by_name["default-int8-dynamic"]["config"]["quantize"] == "int8-dynamic"
    assert by_name["default-int8-dynamic"]["max_abs_err"] > 0  # measured against float32 eager, not assumed


@pytest.mark.slow
def test_compile_quantize_builds_what_tune_built(kept, cli, tmp_path):
    folder, _ = kept
    out = tmp_path / "q.aoti.pt2"
    result = cli("compile", folder / "program.pt2", "-o", out, "--quantize", "int8-dynamic", "--json")
    assert result.code == 0, result.err
    doc = result.json()
    # the same program quantized the same way is the same build: the cache proves quantization is deterministic
    assert doc["quantize"] == "int8-dynamic" and doc["cached"] is True
    verified = cli("verify", f"{case('conv_head')}:model", out, "--atol", "0.1", "--rtol", "0.1")
    assert verified.code == 0, verified.out + verified.err


@pytest.mark.slow
def test_a_too_tight_tolerance_reports_the_int8_candidates_and_chooses_none(kept, cli, tmp_path):
    folder, _ = kept  # the same builds, from the cache
    result = cli("tune", f"{case('conv_head')}:model", "-o", tmp_path / "t.pt2", "--recipes", "default",
                 "--dtypes", "int8", "--atol", "1e-6", "--rtol", "1e-6", "--iters", "2", "--samples", "1", "--json", "-q")
    assert result.code == 1
    doc = result.json()
    assert doc["chosen"] is None and not (tmp_path / "t.pt2").exists()
    assert {c["status"] for c in doc["candidates"]} == {"failed verification"}


def test_quantized_candidates_are_planned_per_device():
    names = [c.name for c in plan_candidates("cpu", dtypes=("fp32", "int8"), recipes=("default", "cpu-freeze"))]
    assert names == ["default-fp32", "cpu-freeze-fp32", "cpu-freeze-int8-dynamic", "cpu-freeze-int8-static",
                     "cpu-freeze-int8-weight-only"]
    plan = plan_candidates("cpu", dtypes=("int8-dynamic",), recipes=("default",), threads=(1, 2))
    assert [(c.name, c.dtype, c.quant, c.threads) for c in plan] == [
        ("default-int8-dynamic-t1", "fp32", "int8-dynamic", 1), ("default-int8-dynamic-t2", "fp32", "int8-dynamic", 2)]


def test_cpu_int8_is_never_planned_on_the_cpp_gemm_templates_while_another_recipe_is_selected():
    plan = plan_candidates("cpu", dtypes=("fp32", "int8-dynamic"), recipes=("cpu-gemm", "default"))
    assert [(c.name, c.quant) for c in plan] == [("cpu-gemm-fp32", None), ("default-fp32", None), ("default-int8-dynamic", "int8-dynamic")]


def test_cpu_int8_with_the_cpp_gemm_templates_is_one_line_not_a_crash(cli, tmp_path):
    # the build itself would abort the process (Scheme.check_settings): refused before the program is read
    check_one_line_error(cli("compile", f"{case('linear_relu')}:model", "-o", tmp_path / "x.aoti.pt2", "--quantize", "int8-dynamic",
                             "--preset", "max-autotune"), "use `--preset cpu-freeze`")


@pytest.mark.parametrize("args,needle", [
    (["--dtypes", "fp8"], "does not run on this cpu"),
    (["--dtypes", "int4-weight-only"], "does not run on this cpu"),
    (["--dtypes", "int3"], "unknown dtype `int3`"),
])
def test_tune_schemes_the_device_lacks_are_usage_errors(cli, tmp_path, args, needle):
    check_one_line_error(cli("tune", f"{case('linear_relu')}:model", "-o", tmp_path / "x.pt2", *args), needle)


@pytest.mark.parametrize("scheme,extra,needle", [
    ("int2", [], "unknown quantization scheme `int2`"),
    ("fp8-dynamic", [], "runs on cuda only"),
    ("int8-static", ["--dtype", "bf16"], "leave `--dtype` out"),
])
def test_compile_schemes_the_device_lacks_are_usage_errors(cli, tmp_path, scheme, extra, needle):
    check_one_line_error(cli("compile", f"{case('linear_relu')}:model", "-o", tmp_path / "x.aoti.pt2", "--quantize", scheme,
                             *extra), needle)


def _calibrated(scheme: str):
    """The PT2E graph `scheme` gives linear_relu (no build): {activation quantize node: its scale argument}."""
    from pt2kit.compile.quantize import _QUANTIZERS

    program, manifest = _program()
    graphs = []

    def keep(module):
        graphs.append(_QUANTIZERS[SCHEMES[scheme].method("cpu", None)](SCHEMES[scheme], *program.example_inputs)(module))
        return graphs[-1]

    quantize_program(program, manifest, SCHEMES[scheme], "cpu", quantize=keep)
    return {n.name: n.args[1] for n in graphs[0].graph.nodes if n.op == "call_function"
            and n.target in (torch.ops.quantized_decomposed.quantize_per_tensor.default,
                             torch.ops.quantized_decomposed.quantize_per_tensor.tensor)}


def test_int8_static_fixes_each_activation_scale_from_the_example_and_dynamic_computes_it_per_call():
    static, dynamic = _calibrated("int8-static"), _calibrated("int8-dynamic")
    # static: a number calibrated on the example input, in the graph; dynamic: a node computed from each input
    assert static and all(isinstance(scale, float) and scale > 0 for scale in static.values()), static
    assert dynamic and all(isinstance(scale, torch.fx.Node) for scale in dynamic.values()), dynamic
    x = _program()[0].example_inputs[0][0]
    first = min(static)  # the input's quantizer: its range is about the example's (a histogram observer trims it)
    assert static[first] == pytest.approx(float(x.max() - x.min()) / 255, rel=0.05)


def test_a_missing_quant_extra_is_one_line_with_the_install_command(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchao", None)  # `import torchao` now raises ImportError
    for args in (["compile", f"{case('linear_relu')}:model", "-o", tmp_path / "x.aoti.pt2", "--quantize", "int8-dynamic"],
                 ["tune", f"{case('linear_relu')}:model", "-o", tmp_path / "x.pt2", "--dtypes", "fp32,int8"]):
        check_one_line_error(cli(*args), "pip install 'pt2kit[quant]'")


def _program():
    target = pt2kit.load_target(f"{case('linear_relu')}:model")
    result = pt2kit.export_program(target, None, dynamic="input:0=batch[1,64]", check_specialization=False)
    return result.program, result.manifest


def test_a_scheme_that_cannot_export_is_one_line_naming_it():
    program, manifest = _program()

    def refuses(module):
        raise RuntimeError("no kernel for this layout\nsecond line")

    with pytest.raises(ExportFailed) as info:
        quantize_program(program, manifest, SCHEMES["int8-dynamic"], "cpu", quantize=refuses)
    text = str(info.value)
    assert "\n" not in text and "`int8-dynamic`" in text and "no kernel for this layout" in text


def test_cpu_int8_weight_scales_follow_small_weights_below_torchaos_floor():
    # torchao's default floors each weight scale at 2**-12, which left channels with small weights half their int8
    # range (benchmarks/tune/quantize.md); pt2kit's config keeps scale = max|w| / 127.5 for them
    program, manifest = _program()
    program = copy.deepcopy(program)  # its weights alias the case module's, which other tests compare against
    weight = next(v for k, v in program.state_dict.items() if k.endswith("0.weight"))
    with torch.no_grad():
        weight.mul_(0.02 / weight.abs().max())  # every channel's max |w| now well below 127 * 2**-12 = 0.031
    expected = weight.abs().amax(dim=1) / 127.5
    quantized, _ = quantize_program(program, manifest, SCHEMES["int8-dynamic"], "cpu")
    # the weights' per-channel scales become buffers of the re-exported program, in layer order
    scales = [v for k, v in quantized.state_dict.items() if k.startswith("_scale_")]
    assert len(scales) == 2 and scales[0].shape == expected.shape, list(quantized.state_dict)
    torch.testing.assert_close(scales[0], expected)
    assert float(scales[0].max()) < 2**-12


def test_linear_calls_become_linear_modules_with_the_same_values():
    program, _ = _program()
    module = program.module()
    x = torch.randn(5, 16)
    before = module(x)
    assert linear_modules(module) == ["0", "2"]
    assert sum(isinstance(m, torch.nn.Linear) for m in module.modules()) == 2
    torch.testing.assert_close(module(x), before)


@pytest.mark.parametrize("quantize", [None, "int8-weight-only"])
def test_a_keyword_input_model_keeps_its_contract_through_the_casts(quantize):
    """transformers models take keyword inputs: the cast-inside wrapper must re-export them (no build: the program)."""
    from pt2kit.compile.dtype import DType, convert_program

    target = pt2kit.load_target(f"{case('keyword_inputs')}:model")
    result = pt2kit.export_program(target, None, dynamic=target.dynamic, check_specialization=False)
    if quantize is None:
        program, manifest = convert_program(result.program, result.manifest, DType.BF16)
    else:
        program, manifest = quantize_program(result.program, result.manifest, SCHEMES[quantize], "cpu", dtype=DType.BF16)
    assert [manifest.describe(leaf) for leaf in manifest.inputs] == [manifest.describe(leaf) for leaf in result.manifest.inputs]
    kwargs = {"x": torch.randn(3, 5, 6), "mask": torch.ones(3, 5)}  # another batch: the dynamic dim survived
    out = program.module()(**kwargs)
    assert out["y"].dtype == torch.float32
    torch.testing.assert_close(out["y"], target.module(**kwargs)["y"], atol=0.1, rtol=0.1)


@pytest.mark.parametrize("scheme", ["int8-dynamic", "int8-static"])
def test_cpu_pt2e_quantizes_the_linear_layers_and_leaves_the_convolution_float(scheme):
    # PT2E's global config also quantized the convolution's weight, which the manifest's `modules` did not list
    target = pt2kit.load_target(f"{case('conv_head')}:model")
    result = pt2kit.export_program(target, None, check_specialization=False)
    program, manifest = quantize_program(result.program, result.manifest, SCHEMES[scheme], "cpu")
    weight_of = {n.target: n.args[1] for n in program.graph.nodes if n.op == "call_function"
                 and n.target in (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default)}
    assert weight_of[torch.ops.aten.conv2d.default].op == "placeholder"  # the float parameter itself
    assert "dequantize" in str(weight_of[torch.ops.aten.linear.default].target)
    assert manifest.extra["quantization"]["modules"] == ["fc1", "fc2"]
    settings = SCHEMES[scheme].inductor_configs("cpu", None)
    assert settings["freezing"] is True
    # dynamic only: the activation scale kept in a buffer, not recomputed in the quantize loop (quantize.md)
    assert settings.get("realize_opcount_threshold") == (3 if scheme == "int8-dynamic" else None)
