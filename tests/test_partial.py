"""Partial AOT end to end on CPU: one region archive, built once for the session (one AOTInductor build)."""

from __future__ import annotations

import copy
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

import pt2kit
from pt2kit.errors import ArtifactError
from pt2kit.partial import RegionFallbackWarning, RegionWeightsWarning, read_manifest, regions_of
from pt2kit.target.inputs import parse_input

ROOT = Path(__file__).resolve().parent.parent
TARGET = str(ROOT / "examples" / "partial_refiner.py") + ":refiner"
sys.path.insert(0, str(ROOT / "examples"))
from partial_refiner import Refiner, refiner  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def archive(build_cache_dir, tmp_path_factory):
    """The refiner's archive, built at batch 2 with no other sample: the regions follow the batch by default."""
    target = pt2kit.load_target(TARGET, [parse_input("x=float32[2,16,32]")])
    path = tmp_path_factory.mktemp("partial") / "refiner.regions.pt2"
    # the blocks take ~15-25% of the time each, embed and head ~1%: 6% keeps this to one AOTInductor build
    result = pt2kit.compile_regions(target, path, min_share=0.06)
    return result


def _eager(model, x):
    with torch.no_grad():
        return model(x)


def _close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-4, rtol=1e-4)


def test_report_says_what_compiled_what_stayed_eager_and_why(archive):
    assert archive.ok and archive.path.is_file()
    blocks = [r for r in archive.regions if r.path.startswith("blocks.")]
    assert [r.path for r in blocks] == ["blocks.0", "blocks.1", "blocks.2", "blocks.3"]
    assert len({r.group for r in blocks}) == 1  # one package shared by the four blocks
    assert any(g.blocks == 4 for g in archive.groups)
    assert 0.2 < archive.share <= 1.0
    root = next(e for e in archive.eager if e.path == "")
    kinds = {str(b.kind) for b in root.blockers}
    assert "data_dependent_branch" in kinds, kinds  # the `while`, in diagnose's format, at the user's line
    assert any("while" in b.location.code for b in root.blockers)
    text = str(archive)
    assert "shared by 4" in text and "stayed eager:" in text
    doc = archive.to_json()
    assert doc["ok"] and len(doc["regions"]) >= 4 and doc["eager"][0]["blockers"]
    with zipfile.ZipFile(archive.path) as zf:
        names = zf.namelist()
    assert sum(n.startswith("packages/") for n in names) == len(archive.groups)
    assert sum(n.startswith("weights/") for n in names) == len(archive.regions)


def test_applied_regions_run_compiled_and_match_eager(archive):
    assert archive.static_batch == ()  # every region follows the batch
    model = pt2kit.apply_regions(refiner(), archive.path)
    for batch in (2, 3, 1, 5, 8):  # built at 2, never shown another size: the batch dim is dynamic by default
        x = torch.randn(batch, 16, 32)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RegionFallbackWarning)
            _close(_eager(model, x), _eager(refiner(), x))
    regions = regions_of(model)
    assert {"blocks.0", "blocks.1", "blocks.2", "blocks.3"} <= set(regions)
    assert all(r.compiled_calls == 5 and r.eager_calls == 0 for r in regions.values())
    # where a region runs is the archive's device: its contract (the exported program's manifest) names none
    assert {r.device for r in regions.values()} == {read_manifest(archive.path).device}


def test_inputs_outside_the_contract_run_eagerly_with_one_warning(archive):
    model = pt2kit.apply_regions(refiner(), archive.path)
    x = torch.randn(4, 7, 32)  # the blocks saw 16 positions only: that dim is static
    with pytest.warns(RegionFallbackWarning, match="blocks.0") as caught:
        _close(_eager(model, x), _eager(refiner(), x))
        _eager(model, x)
    assert sum("blocks.0" in str(w.message) for w in caught) == 1  # once per region, not per call
    assert regions_of(model)["blocks.0"].eager_calls == 2
    model.train()
    with pytest.warns(RegionFallbackWarning, match="training mode"):
        pt2kit.apply_regions(model, archive.path)(torch.randn(8, 16, 32))


def test_each_block_runs_with_its_own_weights(archive):
    torch.manual_seed(1)
    other = Refiner().eval()  # the same architecture with other weights
    with pytest.warns(RegionWeightsWarning, match="weights=\"module\""):
        from_archive = pt2kit.apply_regions(copy.deepcopy(other), archive.path)
    original = refiner()
    h = torch.randn(8, 16, 128)
    outs = [_eager(from_archive.blocks[i], h) for i in range(4)]
    for i in range(4):  # one shared package, four sets of weights: each block's own, from the archive
        torch.testing.assert_close(outs[i], _eager(original.blocks[i], h), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(outs[1], outs[2])
    own = pt2kit.apply_regions(copy.deepcopy(other), archive.path, weights="module")
    x = torch.randn(8, 16, 32)
    _close(_eager(own, x), _eager(other, x))
    assert all(r.compiled_calls == 1 for r in regions_of(own).values())


def test_verify_understands_region_archives(archive, cli):
    report = pt2kit.verify_outputs(pt2kit.load_target(TARGET), archive.path, samples=2)
    assert report.ok, report
    assert report.kind == "regions"
    assert any("calls compiled; none fell back to eager" in n for n in report.notes), report.notes
    result = cli("verify", TARGET, archive.path, "--samples", "1", "--json", "-q")
    assert result.code == 0, result.err
    assert result.json()["ok"]


def test_an_archive_from_another_model_is_refused(archive):
    with pytest.raises(ArtifactError, match="blocks.3"):
        pt2kit.apply_regions(Refiner(depth=2).eval(), archive.path)


def test_damaged_weights_are_refused(archive, tmp_path):
    damaged = tmp_path / "damaged.pt2"
    with zipfile.ZipFile(archive.path) as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "weights/blocks.1.safetensors":
                data = data[:-4] + b"\0\0\0\0"
            dst.writestr(info, data)
    with pytest.raises(ArtifactError, match="checksum"):
        pt2kit.apply_regions(refiner(), damaged)


def test_cli_writes_the_same_archive_from_the_build_cache(archive, cli, tmp_path):
    out = tmp_path / "cli.regions.pt2"  # the same program as the fixture's, so its package comes from the build cache
    result = cli("compile", TARGET, "--partial", "--min-share", "0.06", "--input", "x=float32[2,16,32]", "-o", out, "--json", "-q")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["ok"] and doc["path"] == str(out) and out.is_file()
    assert {r["path"] for r in doc["regions"]} >= {"blocks.0", "blocks.1", "blocks.2", "blocks.3"}
    assert doc["eager"][0]["path"] == "" and doc["eager"][0]["blockers"]
    blocks = [r for r in doc["regions"] if r["path"].startswith("blocks.")]
    assert isinstance(blocks[0]["contract"]["inputs"][0]["shape"][0], str)  # the batch dim is dynamic with no sample
    assert doc["static_batch"] == []
