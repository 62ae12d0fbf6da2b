"""The C++ runner: built once with CMake against the wheel's libtorch, it runs a package without Python."""

import json
import subprocess
from pathlib import Path

import pytest
import torch

import pt2kit
from pt2kit import progress
from conftest import case
from pt2kit.cli import main
from pt2kit.cpp import run_cpp_runner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def cpp_runner(tmp_path_factory) -> Path:
    """`pt2kit cpp-runner -o DIR` once per session; returns the executable."""
    folder = tmp_path_factory.mktemp("cpp") / "runner"
    code = main(["cpp-runner", "-o", str(folder), "-q"])
    progress.set_quiet(False)
    assert code == 0
    assert (folder / "pt2kit_runner.cpp").is_file() and (folder / "CMakeLists.txt").is_file()
    return folder / "build" / "pt2kit_runner"


def test_cpp_outputs_equal_pythons(cpp_runner, small_aoti_package):
    model = pt2kit.load(small_aoti_package)
    for batch in (1, 5, 64):
        x = torch.randn(batch, 16)
        (got,) = run_cpp_runner(cpp_runner, small_aoti_package, [x])
        want = model(x)
        assert got.shape == want.shape == (batch, 4)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_cpp_runner_loads_weights_stored_per_tensor(cpp_runner, tensors_aoti_package):
    x = torch.randn(7, 16)
    (got,) = run_cpp_runner(cpp_runner, tensors_aoti_package, [x])
    torch.testing.assert_close(got, pt2kit.load(tensors_aoti_package)(x), rtol=1e-6, atol=1e-6)


def test_cpp_runner_reports_a_bad_inputs_file_in_one_line(cpp_runner, small_aoti_package, tmp_path):
    bad = tmp_path / "inputs.pt"
    torch.save(["not a tensor"], bad)
    proc = subprocess.run([str(cpp_runner), str(small_aoti_package), str(bad), str(tmp_path / "out.pt")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error:") and "non-tensor" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.pt").exists()
    with pytest.raises(pt2kit.ArtifactError, match="could not run `.*missing.aoti.pt2`"):
        run_cpp_runner(cpp_runner, tmp_path / "missing.aoti.pt2", [torch.randn(2, 16)])
    usage = subprocess.run([str(cpp_runner)], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_cpp_runner_json_names_the_executable(cli, cpp_runner):
    # a rebuild into the same folder is incremental: CMake finds everything up to date
    result = cli("cpp-runner", "-o", cpp_runner.parent.parent, "--json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["executable"] == str(cpp_runner) and Path(doc["cmake_prefix_path"]).is_dir()


@pytest.fixture(scope="module")
def keyword_package(build_cache_dir, tmp_path_factory) -> Path:
    """tests/cases/keyword_inputs.py (inputs `x`, `mask` by keyword, dynamic batch) compiled for CPU."""
    folder = tmp_path_factory.mktemp("kwpkg")
    target = pt2kit.load_target(f"{case('keyword_inputs')}:model")
    progress.set_quiet(True)
    try:
        pt2kit.export_program(target, folder / "kw.pt2", dynamic=target.dynamic, check_specialization=False)
        pt2kit.compile_package(folder / "kw.pt2", folder / "kw.aoti.pt2", device="cpu")
    finally:
        progress.set_quiet(False)
    return folder / "kw.aoti.pt2"


def test_cpp_runner_binds_named_inputs_by_the_recorded_order(cpp_runner, keyword_package, small_aoti_package, tmp_path):
    model = pt2kit.load(keyword_package)
    assert [leaf.name for leaf in model.manifest.inputs] == ["x", "mask"] and model.signature.keyword == ("x", "mask")
    x, mask = torch.randn(3, 5, 6), (torch.rand(3, 5) > 0.5).float()
    want = model(x=x, mask=mask)
    # a dict in another order than the package's binds by name; a list is taken in the recorded order
    for inputs in ({"mask": mask, "x": x}, [x, mask]):
        got = run_cpp_runner(cpp_runner, keyword_package, inputs)
        assert len(got) == 2
        torch.testing.assert_close(got[0], want["y"], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(got[1], want["count"], rtol=1e-6, atol=1e-6)
    with pytest.raises(pt2kit.ArtifactError, match="has no input `mask`; the package takes: x, mask"):
        run_cpp_runner(cpp_runner, keyword_package, {"x": x})
    with pytest.raises(pt2kit.ArtifactError, match="unknown input `bias`"):
        run_cpp_runner(cpp_runner, keyword_package, {"x": x, "mask": mask, "bias": x})
    # a positional program by its input's name (the manifest names it `input`)
    (got,) = run_cpp_runner(cpp_runner, small_aoti_package, {"input": torch.ones(2, 16)})
    torch.testing.assert_close(got, pt2kit.load(small_aoti_package)(torch.ones(2, 16)), rtol=1e-6, atol=1e-6)
