"""Partial AOT without an AOTInductor build: tracing, region choice and grouping, archive and CLI errors."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch

import pt2kit
from pt2kit.errors import ArtifactError, UsageError
from pt2kit.artifact.regions.archive import read_manifest
from pt2kit.partial.regions import group_key, plan_regions
from pt2kit.partial.trace import trace_calls
from tests.conftest import check_one_line_error
from tests.partial_cases.loop_over_blocks import Block, model as loop_model

CASE = "tests/partial_cases/loop_over_blocks.py:model"


def test_trace_records_every_called_module_with_its_inputs_and_time():
    m = loop_model()
    x = torch.randn(4, 32)
    trace = trace_calls(m, [((x,), {}), ((torch.randn(2, 32),), {})], timed_runs=2)
    assert set(trace.records) == {"", "a", "a.fc", "b", "b.fc", "wide", "wide.0", "wide.1", "wide.1.fc", "wide.2"}
    assert [tuple(c[0][0].shape) for c in trace.records["a"].calls] == [(4, 32), (2, 32)]
    assert trace.total_seconds > 0 and 0 < trace.share("wide") <= 1
    assert trace.share("wide.1") <= trace.share("wide")  # inclusive time: a child never exceeds its parent


def test_group_key_separates_configs_and_scalar_settings():
    x = torch.randn(4, 32)
    trace = trace_calls(loop_model(), [((x,), {})], timed_runs=1)
    a, b = trace.records["a"], trace.records["b"]
    assert group_key(a.module, a) == group_key(b.module, b)  # same class, config, shapes: one package
    other = Block(32)
    other.eps = 1e-3  # a plain attribute the code reads: another program
    assert group_key(other, a) != group_key(a.module, a)
    wide = trace.records["wide.1"]
    assert group_key(wide.module, wide) != group_key(a.module, a)


def test_plan_exports_the_largest_submodules_and_groups_identical_blocks():
    m = loop_model()
    trace = trace_calls(m, [((torch.randn(4, 32),), {})], timed_runs=1)
    plan = plan_regions(m, trace, target_spec=CASE, min_share=0.0)
    assert sorted(c.path for c in plan.regions) == ["a", "b", "wide"]  # `wide` covers its children
    groups = {c.path: c.group for c in plan.regions}
    assert groups["a"] == groups["b"] != groups["wide"]
    assert len(plan.programs) == 2  # `b` reused `a`'s export
    root = next(r for r in plan.rejected if r.path == "")
    assert root.kind == "export" and "while" in root.reason


def test_min_share_leaves_small_modules_eager():
    m = loop_model()
    trace = trace_calls(m, [((torch.randn(4, 32),), {})], timed_runs=1)
    plan = plan_regions(m, trace, target_spec=CASE, min_share=0.99)
    assert not plan.regions
    assert {r.kind for r in plan.rejected if r.path} == {"min-share"}


def test_a_program_is_not_a_region_archive(tmp_path):
    fake = tmp_path / "fake.pt2"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("x/data.json", "{}")
    with pytest.raises(ArtifactError, match="not a region archive"):
        read_manifest(fake)
    with pytest.raises(ArtifactError, match="does not exist"):
        pt2kit.apply_regions(loop_model(), tmp_path / "missing.pt2")


def test_load_refuses_a_region_archive_with_the_fix(tmp_path):
    archive = tmp_path / "regions.pt2"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pt2kit/regions.json", json.dumps({"regions": []}))
    with pytest.raises(ArtifactError, match="apply_regions"):
        pt2kit.load(archive)
    with pytest.raises(ArtifactError, match="region archive"):
        pt2kit.compile_package(archive, tmp_path / "again.pt2")
    with pytest.raises(UsageError, match="weights"):
        pt2kit.apply_regions(loop_model(), archive, weights="newest")


def test_cli_partial_rejects_bad_usage(cli, tmp_path):
    out = tmp_path / "r.pt2"
    check_one_line_error(cli("compile", "model.pt2", "--partial", "-o", out), "--partial needs the model's source")
    check_one_line_error(cli("compile", CASE, "--partial", "--min-share", "2", "-o", out), "--min-share")
    check_one_line_error(cli("compile", CASE, "--partial", "--preset", "cpu-freeze", "-o", out), "cpu-freeze")
    assert not out.exists()


def test_a_block_with_a_data_dependent_branch_is_fixed_into_torch_cond():
    from tests.partial_cases.branchy_block import model as branchy_model

    m = branchy_model()
    trace = trace_calls(m, [((torch.randn(4, 16),), {})], timed_runs=1)
    plan = plan_regions(m, trace, target_spec="tests/partial_cases/branchy_block.py:model", min_share=0.0)
    assert [c.path for c in plan.regions] == ["gate"]
    result = plan.programs[plan.regions[0].group]
    assert result.fix is not None and result.fix.steps  # the `if` became torch.cond
    assert any("cond" in str(n.target) for n in result.program.graph.nodes)
    root = next(r for r in plan.rejected if r.path == "")
    assert root.kind == "export"


# -- regions follow the model's batch (export only, no AOTInductor build) -----------------------------------------

BATCH_CASES = [
    ("examples/partial_refiner.py:refiner", (2, 16, 32), torch.float32),
    ("examples/partial_lm.py:early_exit_lm", (2, 64), torch.int64),
    ("tests/partial_cases/loop_over_blocks.py:model", (2, 32), torch.float32),
    ("tests/partial_cases/branchy_block.py:model", (2, 16), torch.float32),
    ("tests/partial_cases/pinned_batch.py:model", (2, 16), torch.float32),
]


@pytest.mark.parametrize("spec,shape,dtype", BATCH_CASES, ids=[c[0].split("/")[-1] for c in BATCH_CASES])
def test_regions_built_at_batch_2_take_dim_0_dynamic_unless_the_code_pins_it(spec, shape, dtype):
    target = pt2kit.load_target(spec)
    x = torch.randint(0, 100, shape) if dtype == torch.int64 else torch.randn(shape)
    trace = trace_calls(target.module, [((x,), {})], timed_runs=1)  # one call: nothing varied, only the batch says
    plan = plan_regions(target.module, trace, target_spec=spec, min_share=0.0)
    assert plan.regions
    for region in plan.regions:
        first = plan.programs[region.group].manifest.inputs[0]
        if region.path == "pinned":  # `.reshape(2, 16)`: the batch is written into the code
            assert first.shape[0] == 2 and "specialize `batch`" in region.static and "static 2" in region.static
        else:
            assert isinstance(first.shape[0], str), (region.path, first)  # a symbol: any batch
            assert region.static == ""


def test_a_batch_of_1_stays_static_and_says_why():
    m = loop_model()
    trace = trace_calls(m, [((torch.randn(1, 32),), {})], timed_runs=1)
    plan = plan_regions(m, trace, target_spec=CASE, min_share=0.0)
    for region in plan.regions:
        assert plan.programs[region.group].manifest.inputs[0].shape[0] == 1
        assert "batch is 1" in region.static and "batch 2 or more" in region.static


def test_the_report_lists_regions_whose_batch_stayed_static():
    from pt2kit.partial.report import PartialResult, StaticBatch

    result = PartialResult(None, CASE, "cpu", (), (), (), 1.0, 1.0, (StaticBatch("pinned", "specialize `batch` (x:0)"),))
    text = str(result)
    assert "batch stayed static" in text and "pinned  specialize `batch` (x:0)" in text
    assert result.to_json()["static_batch"] == [{"path": "pinned", "reason": "specialize `batch` (x:0)"}]


def test_a_region_runs_on_the_archives_device_not_a_default():
    # a CUDA archive's regions once took "cpu" from their contract (which names no device) and ran every call eagerly
    from pt2kit.artifact.manifest import LeafSpec, Manifest
    from pt2kit.runtime.regions.apply import CompiledRegion, RegionFallbackWarning
    from pt2kit.artifact.regions.archive import RegionEntry

    contract = Manifest(inputs=(LeafSpec("x", "tensor", "float32", (4, 32)),), outputs=(LeafSpec("out", "tensor", "float32", (4, 32)),),
                        parameters=("x",))
    module = Block(32).eval()
    entry = RegionEntry("a", "Block", "g", "packages/g.pt2", "weights/a.safetensors", "", contract, 0.0, 0.5, 1)
    region = CompiledRegion(module, entry, runner=None, constants={}, device="cuda")
    assert region.device == "cuda"
    with pytest.warns(RegionFallbackWarning, match="on cpu, the region was compiled for cuda"):
        region(torch.randn(4, 32))
    assert region.eager_calls == 1 and region.compiled_calls == 0
