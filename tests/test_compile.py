"""pt2kit compile: presets, the build cache, atomic builds, checked loading of AOTInductor packages.

AOTInductor builds are slow here (20-60 s each), so the whole file builds three packages:
`small_aoti_package` (preset default, shared with other test files), max-autotune, and
cpu-freeze with --dtype bf16. Everything else reuses them or stops before the build.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import pt2kit
from conftest import ROOT, check_one_line_error
from pt2kit.compile import PRESETS, build as build_module, compile_package
from pt2kit.compile.build import add_manifest
from pt2kit.artifact.package import ArtifactKind, artifact_kind, read_manifest

pytestmark = pytest.mark.slow


def reference(program_path, x):
    return torch.export.load(program_path).module()(x)


def test_default_package_carries_the_manifest_and_matches_the_program(small_aoti_package, linear_program):
    assert artifact_kind(small_aoti_package) is ArtifactKind.AOTI
    manifest = read_manifest(small_aoti_package)
    aoti = manifest.extra["aoti"]
    assert aoti["device"] == "cpu" and aoti["preset"] == "default" and aoti["inductor_configs"] == {}
    assert aoti["torch_version"] == torch.__version__ and aoti["cpu_isa"]  # the ISA the kernels were built for
    assert [d.name for d in manifest.dims] == ["batch"]
    model = pt2kit.load(small_aoti_package)
    assert model.kind is ArtifactKind.AOTI
    for n in (1, 7, 64):
        x = torch.randn(n, 16)
        torch.testing.assert_close(model(x), reference(linear_program, x))
    # plain torch still reads the package, manifest included
    contents = torch.export.pt2_archive._package.load_pt2(str(small_aoti_package))
    assert "pt2kit/manifest.json" in contents.extra_files


def test_second_identical_build_comes_from_the_cache(cli, small_aoti_package, linear_program, tmp_path):
    again = cli("compile", linear_program, "-o", tmp_path / "again.aoti.pt2", "--json")
    assert again.code == 0, again.err
    doc = again.json()
    assert doc["cached"] is True and doc["size_bytes"] == small_aoti_package.stat().st_size
    assert doc["build_seconds"] > 0 and doc["preset"] == "default"
    assert "copy from build cache" in again.err  # progress names the stage
    assert (tmp_path / "again.aoti.pt2").read_bytes() == small_aoti_package.read_bytes()
    text = cli("compile", linear_program, "-o", tmp_path / "again2.aoti.pt2")
    assert "from the build cache" in text.out and "--no-cache" in text.out


def test_interrupted_build_leaves_nothing_behind(linear_program, build_cache_dir, tmp_path, monkeypatch):
    before = sorted(os.listdir(build_cache_dir))

    def crash_midway(ep, package_path, configs):
        Path(package_path).write_bytes(b"half a package")
        raise KeyboardInterrupt

    monkeypatch.setattr(build_module, "_aoti_compile", crash_midway)
    out = tmp_path / "model.aoti.pt2"
    # use_cache=False: the build is attempted although an identical one is cached (--no-cache)
    with pytest.raises(KeyboardInterrupt):
        compile_package(linear_program, out, use_cache=False)
    assert not out.exists()
    assert os.listdir(tmp_path) == []  # no temporary folder either
    assert sorted(os.listdir(build_cache_dir)) == before


@pytest.mark.parametrize("preset, dtype", [("max-autotune", None), ("cpu-freeze", "bf16")])
def test_presets_build_and_run(preset, dtype, linear_program, tmp_path):
    out = tmp_path / f"{preset}.aoti.pt2"
    result = compile_package(linear_program, out, preset=preset, dtype=dtype)
    assert not result.cached and result.inductor_configs == dict(PRESETS[preset].inductor_configs)
    assert result.to_json()["size_bytes"] == out.stat().st_size
    manifest = read_manifest(out)
    assert manifest.extra["aoti"]["inductor_configs"] == dict(PRESETS[preset].inductor_configs)
    model = pt2kit.load(out)
    x = torch.randn(5, 16)
    if dtype is None:
        torch.testing.assert_close(model(x), reference(linear_program, x))
        return
    # the model's contract is kept: float32 in and out, bf16 inside (issue 23 point 7)
    assert manifest.extra["dtype"] == "bf16" and manifest.extra["io"] == "model" and manifest.inputs[0].dtype == "float32"
    assert [d.name for d in manifest.dims] == ["batch"]  # the dynamic dim survives the conversion
    y = model(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, reference(linear_program, x), atol=0.05, rtol=0.05)
    assert torch._inductor.aoti_load_package(str(out))(x).dtype == torch.float32  # plain torch too
    # verify holds it to the eager model converted the same way (bf16 inside float32 casts), at bf16's tolerance
    report = pt2kit.verify_outputs(pt2kit.load_target(f"{ROOT}/tests/cases/linear_relu.py:model"), out, samples=1)
    assert report.ok, report


def test_low_precision_io_exposes_the_bf16_interface(linear_program, tmp_path, cli):
    out = tmp_path / "low.aoti.pt2"
    assert cli("compile", linear_program, "-o", out, "--dtype", "bf16", "--low-precision-io", "-q").code == 0
    manifest = read_manifest(out)
    assert manifest.extra["io"] == "low" and manifest.inputs[0].dtype == "bfloat16"
    model = pt2kit.load(out)
    x = torch.randn(5, 16)
    y = model(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), reference(linear_program, x), atol=0.05, rtol=0.05)
    with pytest.raises(pt2kit.InputMismatchError, match="bfloat16"):
        model(x)


def test_low_precision_io_without_a_dtype_is_a_usage_error(linear_program, tmp_path, cli):
    check_one_line_error(cli("compile", linear_program, "-o", tmp_path / "x.aoti.pt2", "--low-precision-io"), "--dtype bf16")


def test_loads_in_a_fresh_process_without_a_compiler(small_aoti_package, tmp_path):
    code = (
        "import json, sys, time, torch, pt2kit\n"
        "t = time.perf_counter(); m = pt2kit.load(sys.argv[1]); y = m(torch.randn(3, 16)); s = time.perf_counter() - t\n"
        "print(json.dumps({'shape': list(y.shape), 'seconds': s, 'inductor': 'torch._inductor.codecache' in sys.modules}))\n"
    )
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    proc = subprocess.run([sys.executable, "-c", code, str(small_aoti_package)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["shape"] == [3, 4]
    assert doc["inductor"] is False  # no ISA probe, no compiler: Inductor is never imported to load
    assert not (tmp_path / "inductor").exists()


def edited_copy(src: Path, dst: Path, **aoti) -> Path:
    shutil.copyfile(src, dst)
    manifest = read_manifest(dst)
    torch_version = aoti.pop("torch_version", None)
    extra = {**manifest.extra, "aoti": {**manifest.extra["aoti"], **aoti, **({"torch_version": torch_version} if torch_version else {})}}
    add_manifest(dst, manifest.replace(extra=extra))
    return dst


def test_incompatible_packages_fail_before_loading(cli, small_aoti_package, tmp_path):
    cuda = edited_copy(small_aoti_package, tmp_path / "cuda.aoti.pt2", device="cuda")
    if not torch.cuda.is_available():
        check_one_line_error(cli("run", cuda, "-i", "input=float32[2,16]"), "`cuda.aoti.pt2` was compiled for CUDA", "--device cpu")
        with pytest.raises(pt2kit.ArtifactError, match="compiled for CUDA"):
            pt2kit.load(cuda)
    old = edited_copy(small_aoti_package, tmp_path / "old.aoti.pt2", torch_version="1.13.0")
    check_one_line_error(cli("run", old, "-i", "input=float32[2,16]"), "compiled with torch 1.13.0", "pt2kit compile")
    isa = edited_copy(small_aoti_package, tmp_path / "isa.aoti.pt2", cpu_isa="AVX512 AMX_TILE AMX_FP16")
    if not torch.cpu._is_amx_fp16_supported():
        check_one_line_error(cli("run", isa, "-i", "input=float32[2,16]"), "this CPU lacks", "ATEN_CPU_CAPABILITY=avx2")
    with zipfile.ZipFile(small_aoti_package) as zf:
        assert len(zf.namelist()) == len(set(zf.namelist()))  # the copies were edited, not the original


def test_inputs_are_checked_against_the_manifest(cli, small_aoti_package):
    model = pt2kit.load(small_aoti_package)
    with pytest.raises(pt2kit.InputMismatchError, match="dim 1 has size 17, expected 16"):
        model(torch.randn(3, 17))
    with pytest.raises(pt2kit.InputMismatchError, match=r"outside the range of `batch` \[1, 64\]"):
        model(torch.randn(65, 16))
    with pytest.raises(pt2kit.InputMismatchError, match="dtype float64"):
        model(torch.randn(3, 16, dtype=torch.float64))
    x = torch.randn(3, 16)
    torch.testing.assert_close(model(input=x), model(x))  # by name, as the eager model accepts it
    check_one_line_error(cli("run", small_aoti_package, "-i", "input=float32[3,17]"), "`input` dim 1 has size 17")
    ok = cli("run", small_aoti_package, "-i", "input=float32[64,16]", "--json")
    assert ok.code == 0 and ok.json()["outputs"][0]["shape"] == [64, 4]


def test_bad_compile_requests_are_one_line_errors(cli, linear_program, small_aoti_package, tmp_path):
    check_one_line_error(cli("compile", linear_program, "-o", tmp_path / "m.aoti.pt2", "--preset", "fastest"), "unknown preset `fastest`")
    check_one_line_error(cli("compile", linear_program, "-o", tmp_path / "m.so"), "must end in .pt2")
    check_one_line_error(cli("compile", small_aoti_package, "-o", tmp_path / "m.aoti.pt2"), "already an AOTInductor package")
    check_one_line_error(cli("compile", tmp_path / "missing.pt2", "-o", tmp_path / "m.aoti.pt2"), "does not exist")
    if not torch.cuda.is_available():
        check_one_line_error(cli("compile", linear_program, "-o", tmp_path / "m.aoti.pt2", "--device", "cuda"), "--device cpu")
    check_one_line_error(cli("compile", linear_program, "-o", tmp_path / "m.aoti.pt2", "--device", "cuda", "--preset", "cpu-freeze"),
                         "preset `cpu-freeze` is for cpu")
    assert os.listdir(tmp_path) == []


def test_docs_list_each_presets_exact_settings():
    doc = (ROOT / "docs" / "compile.md").read_text()
    for preset in PRESETS.values():
        assert f"`{preset.name}`" in doc
        assert json.dumps(dict(preset.inductor_configs), sort_keys=True) in doc, preset.name


def test_a_crash_while_opening_a_cuda_package_becomes_the_ld_preload_advice(small_aoti_package, tmp_path, monkeypatch):
    # the GPU machine's failure mode (SIGSEGV in std::regex inside the package's .so), replayed through the probe's seam
    from pt2kit.runtime import loader

    calls = []

    def child(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, -11 if len(calls) == 1 else 0, "", "")

    monkeypatch.setattr(loader.subprocess, "run", child)
    with pytest.raises(pt2kit.ArtifactError, match=r"crashes the process \(SIGSEGV.*LD_PRELOAD=/\S*libstdc\+\+\.so\.6"):
        loader.probe_load(small_aoti_package, -1, cache_dir=tmp_path)
    loader.probe_load(small_aoti_package, -1, cache_dir=tmp_path)  # a clean child: the verdict is cached
    loader.probe_load(small_aoti_package, -1, cache_dir=tmp_path)
    assert len(calls) == 2
