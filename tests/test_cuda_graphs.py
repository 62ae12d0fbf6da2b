"""CUDA graph replay (`pt2kit.load(path, cuda_graphs=True)`).

On CPU the shape, padding and bucket logic runs through the runner's `capture` seam with a capture that re-runs
the package into the same output buffers (what a replay does); the real capture runs on a CUDA machine only.
"""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest
import torch
from torch.utils import _pytree as pytree

import pt2kit
from pt2kit.runtime.cuda_graphs import BatchBuckets, CudaGraphRunner, batch_buckets, cut_outputs, pad_leaves, shape_key
from pt2kit.artifact.manifest import DimRange, LeafSpec, Manifest
from pt2kit.compile.build import add_manifest
from pt2kit.runtime.loader import load_aoti
from pt2kit.artifact.package import read_manifest

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def rerun_capture(run, static, pool):
    """Stands in for a CUDA graph on CPU: 'replay' runs again and writes into the first call's outputs."""
    outputs = run(list(static))

    def replay():
        for buffer, new in zip(outputs, run(list(static))):
            buffer.copy_(new)

    return replay, outputs


def _manifest() -> Manifest:
    return Manifest(
        inputs=(LeafSpec("x", "tensor", "float32", ("s0", 16)), LeafSpec("table", "tensor", "float32", (10, 16))),
        outputs=(LeafSpec("output[0]", "tensor", "float32", ("s0", 4)), LeafSpec("output[1]", "tensor", "float32", (4,))),
        dims=(DimRange("s0", "batch", 1, 64, ("x:0",)),),
    )


def test_buckets_resolve_by_name_and_pick_the_next_captured_size():
    buckets = batch_buckets(_manifest(), "batch", [8, 2, 32, 8])
    assert buckets.sizes == (2, 8, 32)
    assert buckets.inputs == ((0, 0),) and buckets.outputs == ((0, 0),)
    assert [buckets.bucket_for(n) for n in (1, 2, 3, 9, 32, 33)] == [2, 2, 8, 32, 32, None]
    assert batch_buckets(_manifest(), "s0", [4]).name == "batch"


@pytest.mark.parametrize("dim,sizes,needle", [("seq", [4], "not a dynamic dim"), ("batch", [0, 4], "outside `batch` [1, 64]"),
                                              ("batch", [65], "outside"), ("batch", [], "outside")])
def test_bad_buckets_say_what_is_wrong(dim, sizes, needle):
    with pytest.raises(pt2kit.UsageError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        batch_buckets(_manifest(), dim, sizes)


def test_padding_repeats_the_last_row_and_cutting_restores_the_batch():
    buckets = batch_buckets(_manifest(), "batch", [8])
    x, table = torch.arange(3 * 16.0).reshape(3, 16), torch.randn(10, 16)
    padded = pad_leaves([x, table], buckets, 8)
    assert padded[0].shape == (8, 16) and torch.equal(padded[0][:3], x)
    assert torch.equal(padded[0][3:], x[2:3].expand(5, 16))  # a real row: valid ids, masks and images stay valid
    assert padded[1] is table  # not a batched input
    out = cut_outputs([torch.randn(8, 4), torch.randn(4)], buckets, 3)
    assert out[0].shape == (3, 4) and out[1].shape == (4,)
    assert shape_key(padded) == (((8, 16), torch.float32, "cpu"), ((10, 16), torch.float32, "cpu"))


class _RowMixing:
    """A runner whose model subtracts the batch mean: padding changes every row."""

    def __init__(self):
        self.loader = self
        self.out_spec = pytree.tree_flatten([torch.zeros(1)])[1]

    def boxed_run(self, tensors):
        return [tensors[0] - tensors[0].mean(0, keepdim=True)]

    def flatten(self, args, kwargs):
        return list(args)


def test_a_model_that_mixes_rows_turns_padding_off_and_says_why():
    manifest = Manifest(inputs=(LeafSpec("x", "tensor", "float32", ("s0", 4)),), outputs=(LeafSpec("output[0]", "tensor", "float32", ("s0", 4)),),
                        dims=(DimRange("s0", "batch", 1, 64, ("x:0",)),))
    runner = CudaGraphRunner(_RowMixing(), manifest, batch=batch_buckets(manifest, "batch", [8]), capture=rerun_capture)
    x = torch.randn(5, 4)
    with pytest.warns(RuntimeWarning, match="mixes rows"):
        (out,) = runner(x)
    assert torch.allclose(out, x - x.mean(0, keepdim=True))  # the unpadded answer, not the padded one
    assert runner.batch is None and "mixes rows" in runner.notes[0]
    (again,) = runner(x)
    assert torch.allclose(again, out) and runner.stats()["uncaptured"] >= 1


@pytest.mark.slow
def test_replay_pads_and_returns_fresh_outputs_on_a_real_package(small_aoti_package):
    manifest = read_manifest(small_aoti_package)
    plain = pt2kit.load(small_aoti_package)
    runner = CudaGraphRunner(load_aoti(small_aoti_package, manifest, single_threaded=True), manifest,
                             batch=batch_buckets(manifest, "batch", [4, 8]), capture=rerun_capture)
    a, b = torch.randn(8, 16), torch.randn(8, 16)
    out_a = runner(a)
    out_b = runner(b)
    assert torch.allclose(out_a, plain(a), atol=1e-6) and torch.allclose(out_b, plain(b), atol=1e-6)
    assert not torch.allclose(out_a, out_b)  # the first result was not overwritten by the second replay
    assert runner.stats() == {"graphs": 1, "captures": 1, "replays": 2, "uncaptured": 0}
    c = torch.randn(5, 16)  # between the buckets: padded to 8, checked once against an unpadded run
    out_c = runner(c)
    assert out_c.shape == (5, 4) and torch.allclose(out_c, plain(c), atol=1e-6)
    assert runner.stats()["graphs"] == 1 and runner.notes == []
    big = torch.randn(20, 16)  # above the largest bucket: uncaptured
    before = runner.stats()["uncaptured"]
    assert torch.allclose(runner(big), plain(big), atol=1e-6) and runner.stats()["uncaptured"] == before + 1


@pytest.mark.slow
def test_without_buckets_each_shape_is_captured_up_to_the_limit(small_aoti_package):
    manifest = read_manifest(small_aoti_package)
    runner = CudaGraphRunner(load_aoti(small_aoti_package, manifest, single_threaded=True), manifest, max_graphs=2,
                             capture=rerun_capture)
    for n in (1, 2, 3, 1):
        runner(torch.randn(n, 16))
    assert runner.stats() == {"graphs": 2, "captures": 2, "replays": 3, "uncaptured": 1}


def _with_load_options(package, tmp_path, options):
    copy = tmp_path / f"opts-{abs(hash(json.dumps(options, sort_keys=True)))}.aoti.pt2"
    shutil.copyfile(package, copy)
    add_manifest(copy, read_manifest(package).replace(load_options=options))
    return copy


@pytest.mark.slow
def test_load_applies_the_manifest_load_options(small_aoti_package, tmp_path):
    graphs = _with_load_options(small_aoti_package, tmp_path, {"cuda_graphs": True})
    with pytest.raises(pt2kit.ArtifactError, match="CUDA graphs need a CUDA one"):
        pt2kit.load(graphs)  # applied by default: this is a CPU package
    assert pt2kit.load(graphs, cuda_graphs=False)(torch.randn(2, 16)).shape == (2, 4)  # the caller overrides
    saved = torch.get_num_threads()
    try:
        pt2kit.load(_with_load_options(small_aoti_package, tmp_path, {"cuda_graphs": False, "threads": 1}))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(saved)


def test_manifests_without_the_new_fields_still_load():
    data = _manifest().to_json()
    del data["tuned"], data["load_options"]
    old = Manifest.from_json(json.loads(json.dumps(data)))
    assert old.tuned == {} and old.load_options == {}


@cuda
@pytest.mark.slow
def test_cuda_graph_replay_matches_plain_runs(linear_program, build_cache_dir, tmp_path):
    package = tmp_path / "linear.cuda.aoti.pt2"
    pt2kit.compile_package(linear_program, package, device="cuda")
    plain = pt2kit.load(package)
    graphed = pt2kit.load(package, cuda_graphs=True, graph_batch_sizes=[4, 8])
    assert isinstance(graphed._runner, CudaGraphRunner)
    xs = [torch.randn(n, 16, device="cuda") for n in (8, 8, 3, 4, 64)]
    outs = [graphed(x) for x in xs]
    for x, out in zip(xs, outs):  # every earlier output intact after later replays
        assert out.shape == (x.shape[0], 4) and torch.allclose(out, plain(x), atol=1e-5, rtol=1e-5)
    stats = graphed._runner.stats()
    assert stats["graphs"] == 2 and stats["captures"] == 2 and stats["uncaptured"] >= 1  # 8 and 4; 64 uncaptured
