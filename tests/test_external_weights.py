"""`--external-weights`: a package's weights outside its `.so`, chosen by size, recorded, shown, loaded.

One slow build: `tests/cases/wide_linear.py` (134 MB of fp32 weights) with the threshold lowered to 50 MB, so
`auto` keeps the weights in a blob beside a small `.so`. `--external-weights tensors` (one file per weight,
mapped at load) uses the session's small linear program (`tensors_aoti_package`). The rest needs no build.
"""

import shutil
import zipfile
from pathlib import Path

import pytest
import torch

import pt2kit
from conftest import case, check_one_line_error
from pt2kit import progress
from pt2kit.artifact.inspection import inspect_artifact, package_layout
from pt2kit.artifact.package import read_manifest
from pt2kit.compile import build as build_module, compile_package
from pt2kit.compile.dtype import DType, convert_program
from pt2kit.compile.build import add_manifest
from pt2kit.compile.external import EXTERNAL_SETTINGS, TENSOR_SETTINGS, THRESHOLD_ENV, external_settings
from pt2kit.errors import ArtifactError, UsageError
from pt2kit.target.resolve import load_target

WEIGHTS_BYTES = 2 * (4096 * 4096 + 4096) * 4


@pytest.fixture(scope="module")
def wide_package(tmp_path_factory):
    """`wide_linear` exported with a dynamic batch and built with `auto` under a 50 MB threshold (no build cache)."""
    folder = tmp_path_factory.mktemp("wide")
    target = load_target(f"{case('wide_linear')}:model")
    target.dynamic = "input:0=batch[1,32]"
    progress.set_quiet(True)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(THRESHOLD_ENV, str(50_000_000))
            result = compile_package(target, folder / "wide.aoti.pt2", use_cache=False)
    finally:
        progress.set_quiet(False)
    return result, target.module


@pytest.mark.slow
def test_auto_puts_the_weights_outside_a_small_so(wide_package):
    result, _ = wide_package
    assert result.external_weights and result.weights_bytes == WEIGHTS_BYTES
    assert {k: result.inductor_configs[k] for k in EXTERNAL_SETTINGS} == dict(EXTERNAL_SETTINGS)
    layout = package_layout(result.path)
    assert layout.external_weights and layout.blob_name.endswith("_weights.blob")
    assert layout.blob_bytes >= WEIGHTS_BYTES and layout.so_bytes < 10_000_000  # code only
    aoti = read_manifest(result.path).extra["aoti"]
    assert aoti["external_weights"] is True and aoti["weights_bytes"] == WEIGHTS_BYTES
    assert "`--external-weights tensors`" in str(result)  # the report points at the layout that maps in place


@pytest.mark.slow
def test_external_package_loads_in_pt2kit_and_plain_torch(wide_package):
    result, eager = wide_package
    x = torch.randn(5, 4096)
    with torch.no_grad():
        expected = eager(x)
    torch.testing.assert_close(pt2kit.load(result.path)(x), expected, rtol=1e-4, atol=1e-4)
    plain = torch._inductor.aoti_load_package(str(result.path))
    torch.testing.assert_close(plain(x[:1]), expected[:1], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_inspect_shows_where_the_weights_are(cli, wide_package):
    result, _ = wide_package
    text = cli("inspect", result.path)
    assert text.code == 0, text.err
    assert "weights outside it in" in text.out and "_weights.blob" in text.out
    doc = inspect_artifact(result.path).to_json()
    assert doc["layout"]["external_weights"] is True and doc["layout"]["so_bytes"] < 10_000_000


def test_auto_follows_the_threshold(monkeypatch):
    monkeypatch.delenv(THRESHOLD_ENV, raising=False)
    assert external_settings("auto", 500_000_000) == {}  # under the 1 GB default
    assert external_settings("auto", 2_200_000_000) == dict(EXTERNAL_SETTINGS)
    assert external_settings("off", 10**12) == {}
    assert external_settings("on", 1) == dict(EXTERNAL_SETTINGS)
    assert external_settings("tensors", 1) == dict(TENSOR_SETTINGS)  # asked for: any size
    monkeypatch.setenv(THRESHOLD_ENV, "1000")
    assert external_settings("auto", 1000) == dict(EXTERNAL_SETTINGS)


def test_bad_mode_and_threshold_are_one_line_errors(cli, linear_program, monkeypatch, tmp_path):
    with pytest.raises(UsageError, match="--external-weights auto"):
        external_settings("sometimes", 1)
    monkeypatch.setenv(THRESHOLD_ENV, "2GB")
    check_one_line_error(cli("compile", linear_program, "-o", tmp_path / "m.aoti.pt2"), THRESHOLD_ENV, "2GB")
    assert list(tmp_path.iterdir()) == []


def test_release_eager_frees_only_weights_the_program_does_not_share():
    import copy

    module = torch.nn.Linear(8, 8)
    own_copy = torch.export.export(copy.deepcopy(module), (torch.randn(2, 8),))  # as after a move to CUDA
    assert build_module._release_eager(module, own_copy) is True
    assert {p.device.type for p in module.parameters()} == {"meta"}
    module = torch.nn.Linear(8, 8)
    shared = torch.export.export(module, (torch.randn(2, 8),))
    assert build_module._release_eager(module, shared) is False
    assert {p.device.type for p in module.parameters()} == {"cpu"}


def test_release_eager_frees_only_weights_the_build_does_not_share(monkeypatch, tmp_path):
    seen = []

    class Stop(Exception):
        pass

    def fake_build(ep, package_path, configs):  # the build itself is not the point: what is in memory when it starts
        seen.append(({p.device.type for p in target.module.parameters()}, {t.device.type for t in ep.state_dict.values()}))
        raise Stop

    monkeypatch.setattr(build_module, "_aoti_compile", fake_build)
    # a private copy of the case: releasing moves the model's weights to `meta`, and the shared case module must not see it
    source = tmp_path / "release_case.py"
    source.write_text(Path(case("linear_relu")).read_text())
    for dtype, eager in ((None, {"cpu"}), ("bf16", {"meta"})):
        target = load_target(f"{source}:model")
        with pytest.raises(Stop):
            compile_package(target, tmp_path / "m.aoti.pt2", dtype=dtype, use_cache=False, release_eager=True)
        # own dtype on CPU: the program shares the model's tensors, nothing to free; `--dtype` casts a copy: freed
        assert seen.pop() == (eager, {"cpu"})


def test_release_eager_and_verify_together_are_refused(cli, tmp_path):
    check_one_line_error(cli("compile", f"{case('linear_relu')}:model", "-o", tmp_path / "m.aoti.pt2", "--verify",
                             "--release-eager"), "--release-eager", "--verify")


def test_dtype_already_in_place_skips_the_second_export():
    module = torch.nn.Linear(8, 8).to(torch.bfloat16)
    ep = torch.export.export(module, (torch.randn(2, 8, dtype=torch.bfloat16),))
    manifest = pt2kit.artifact.manifest.build_manifest(ep, parameters=["input"])
    same, new_manifest = convert_program(ep, manifest, DType.BF16)
    assert same is ep and new_manifest.extra["dtype"] == "bf16"
    cast, _ = convert_program(ep, manifest, DType.FP32)
    assert cast is not ep and all(t.dtype == torch.float32 for t in cast.state_dict.values())


def _mapped_ranges(path: Path) -> list[tuple[int, int]]:
    """The address ranges where this process maps `path` (Linux /proc/self/maps)."""
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == str(path.resolve()):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


@pytest.mark.slow
def test_tensors_layout_is_recorded_and_shown(cli, tensors_aoti_package):
    layout = package_layout(tensors_aoti_package)
    assert layout.weights_layout == "tensors" and layout.tensor_files >= 2 and not layout.blob_name
    aoti = read_manifest(tensors_aoti_package).extra["aoti"]
    assert aoti["weights_layout"] == "tensors" and aoti["external_weights"] is True
    text = cli("inspect", tensors_aoti_package)
    assert text.code == 0 and "one file per tensor" in text.out


@pytest.mark.slow
def test_tensors_package_maps_its_weights_and_matches_torchs_own_loader(tensors_aoti_package, linear_program):
    from torch.export.pt2_archive._package import load_pt2

    x = torch.randn(5, 16)
    expected = pt2kit.load(linear_program)(x)
    loaded = pt2kit.load(tensors_aoti_package)
    torch.testing.assert_close(loaded(x), expected, rtol=1e-5, atol=1e-5)
    plain = load_pt2(str(tensors_aoti_package), load_weights_from_disk=True).aoti_runners["model"]
    torch.testing.assert_close(plain(x), expected, rtol=1e-5, atol=1e-5)
    weights = loaded._runner.weights
    assert weights and set(weights) == set(loaded._runner.loader.get_constant_fqns())
    ranges = _mapped_ranges(tensors_aoti_package)
    if Path("/proc/self/maps").exists():  # the weights lie in the mapped archive: nothing was copied
        assert all(any(lo <= t.data_ptr() < hi for lo, hi in ranges) for t in weights.values())


@pytest.mark.slow
def test_rewritten_manifest_keeps_tensor_weights_loadable(tensors_aoti_package, tmp_path):
    copy = tmp_path / "again.aoti.pt2"
    shutil.copyfile(tensors_aoti_package, copy)
    manifest = read_manifest(copy)
    add_manifest(copy, manifest.replace(extra={**manifest.extra, "note": "rewritten"}))  # the rebuild `tune` does
    assert read_manifest(copy).extra["note"] == "rewritten"
    x = torch.randn(3, 16)
    torch.testing.assert_close(pt2kit.load(copy)(x), pt2kit.load(tensors_aoti_package)(x))


@pytest.mark.slow
def test_missing_weight_file_is_a_one_line_error(tensors_aoti_package, tmp_path):
    broken = tmp_path / "broken.aoti.pt2"
    with zipfile.ZipFile(tensors_aoti_package) as src, zipfile.ZipFile(broken, "w") as dst:
        dropped = next(i.filename for i in src.infolist() if "/data/weights/" in i.filename)
        for info in src.infolist():
            if info.filename != dropped:
                dst.writestr(info, src.read(info))
    with pytest.raises(ArtifactError, match="lacks `.*weight_") as err:
        pt2kit.load(broken)
    assert "\n" not in str(err.value) and "rebuild" in str(err.value)


@pytest.mark.slow
def test_raw_bench_mode_loads_per_tensor_weights_with_torch_alone(tensors_aoti_package):
    from pt2kit.benchmark.modes import _load_raw

    built = _load_raw(tensors_aoti_package, -1, 1.0, tensors_aoti_package.stat().st_size)
    assert not isinstance(built, Exception), built  # bare aoti_load_package would have left the weights out
    x = torch.randn(4, 16)
    torch.testing.assert_close(built.fn((x,), {}), pt2kit.load(tensors_aoti_package)(x), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_weights_for_another_device_keep_each_views_place_in_its_storage(tensors_aoti_package):
    from pt2kit.runtime.weights import StoredWeights, map_weights

    stored = StoredWeights.find(tensors_aoti_package)
    on_cpu = map_weights(tensors_aoti_package, stored, torch.device("cpu"))
    moved = map_weights(tensors_aoti_package, stored, torch.device("meta"))  # the path CUDA takes: whole storages moved
    assert set(on_cpu) == set(moved)
    for fqn, t in on_cpu.items():
        m = moved[fqn]
        assert m.device.type == "meta" and (m.dtype, m.shape, m.stride(), m.storage_offset()) == (
            t.dtype, t.shape, t.stride(), t.storage_offset())
        assert m.untyped_storage().nbytes() == t.untyped_storage().nbytes()
