"""`pt2kit bench`: every available mode runs on a tiny model, the JSON is consistent, the chart is a PNG.

No test asserts a timing: only that figures exist, are ordered (p50 <= p90 <= p99) and agree
with each other (throughput = batch * 1000 / p50).
"""

from __future__ import annotations

import json
import math
import struct

import pytest
import torch
from torch import nn

import pt2kit
from pt2kit import progress
from pt2kit.benchmark import BenchMode, ModeStatus, parse_modes, write_plot
from pt2kit.benchmark.batching import batch_layout, parse_batch_sizes
from pt2kit.benchmark.timing import Timer, interleaved, percentile
from pt2kit.cli import main
from pt2kit.errors import UsageError
from pt2kit.target.resolve import Target

from conftest import case, check_one_line_error

ROW_KEYS = {"mode", "batch_size", "build_s", "cold_start_s", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput",
            "peak_mem_bytes", "artifact_bytes", "samples", "outputs_match"}
FAST_MODES = "eager,compile,export,onnxruntime"


@pytest.fixture(scope="session")
def cli_bench(tmp_path_factory):
    """`pt2kit bench --json --plot` on the MLP case, every mode but aoti, two batch sizes (one dynamic build)."""
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("bench")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["bench", f"{case('linear_relu')}:model", "--modes", FAST_MODES, "--batch-sizes", "1,4",
                     "--warmup", "1", "--iters", "5", "--threads", "1", "--json", "--plot", str(folder / "chart.png"), "-q"])
    progress.set_quiet(False)
    return code, json.loads(out.getvalue()), folder / "chart.png"


@pytest.fixture(scope="session")
def aoti_report():
    """The library on the two-input, keyword, dict-output case with aoti (one AOTInductor build, dynamic batch)."""
    progress.set_quiet(True)
    try:
        return pt2kit.bench(case("two_inputs_dict_out") + ":model", modes="eager,aoti,onnxruntime",
                            batch_sizes=[2, 3], warmup=1, iters=4, threads=1)
    finally:
        progress.set_quiet(False)


def check_consistent(doc: dict, modes: list[str], sizes: list[int]) -> None:
    assert doc["batch_sizes"] == sizes and doc["interleaved"] is True
    assert doc["overhead_ms"] >= 0 and doc["machine"]["torch"] == torch.__version__
    for mode in modes:
        entry = doc["modes"][mode]
        assert entry["status"] == "ok", entry
        assert sorted(entry["batches"]) == sorted(map(str, sizes))
        for bs, row in entry["batches"].items():
            assert set(row) == ROW_KEYS and row["mode"] == mode and row["batch_size"] == int(bs)
            assert 0 <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"], row
            assert row["samples"] == doc["iters"]
            assert math.isclose(row["throughput"], int(bs) * 1000 / row["p50_ms"], rel_tol=1e-3), row
            assert row["cold_start_s"] is not None and row["cold_start_s"] >= 0
            if mode in ("export", "aoti", "aoti-raw", "onnxruntime"):
                assert row["build_s"] > 0 and row["artifact_bytes"] > 0
            if mode == "eager":
                assert row["build_s"] is None and row["artifact_bytes"] is None
            assert row["outputs_match"] is (None if mode == "eager" else True), row  # every mode checked against eager
    assert len(doc["results"]) == len(modes) * len(sizes)


def test_cli_runs_every_fast_mode_with_consistent_json(cli_bench):
    code, doc, _ = cli_bench
    assert code == 0 and doc["ok"] is True
    check_consistent(doc, FAST_MODES.split(","), [1, 4])
    assert {doc["modes"][m]["batch_build"] for m in ("export", "onnxruntime")} == {"dynamic"}
    assert any("input:0=batch[1,4]" in note for note in doc["notes"])


def test_cli_writes_a_png_chart(cli_bench):
    path = cli_bench[2]
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100 and height > 100


@pytest.mark.slow
def test_aoti_and_aoti_raw_run_with_keyword_and_dict_outputs(aoti_report, tmp_path):
    doc = aoti_report.to_json()
    check_consistent(doc, ["eager", "aoti", "aoti-raw", "onnxruntime"], [2, 3])
    aoti, raw = aoti_report.row("aoti", 3), aoti_report.row("aoti-raw", 3)
    assert aoti.build_s == raw.build_s and aoti.artifact_bytes == raw.artifact_bytes  # one build, two ways to call it
    text = str(aoti_report)
    assert "aoti-raw" in text and "harness overhead" in text and "machine:" in text
    assert write_plot(aoti_report, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_table_lists_each_row_and_the_overhead(cli_bench, tmp_path):
    report = pt2kit.bench(case("linear_relu") + ":model", modes="eager,export", warmup=0, iters=3)
    text = str(report)
    lines = text.splitlines()
    assert lines[1].split()[:4] == ["mode", "batch", "outputs", "build"]
    assert sum(line.startswith(("eager ", "export ")) for line in lines) == 2
    assert report.batch_sizes == (8,)  # the example's own batch when none is given
    assert report.outcomes[1].batch_build == "static"


class BranchOnBatch(nn.Module):
    """A Python branch on the batch size: no single dynamic-batch program exists."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x) * 2 if x.shape[0] > 2 else self.lin(x)


def test_a_model_that_cannot_take_a_dynamic_batch_is_built_once_per_batch_size():
    target = Target("BranchOnBatch", BranchOnBatch().eval(), (torch.randn(4, 4),))
    report = pt2kit.bench(target, modes="export", batch_sizes=[1, 4], warmup=0, iters=2)
    assert report.ok, report.outcomes
    assert report.outcomes[0].batch_build == "per-batch"
    assert any("once per batch size" in n for n in report.notes)
    assert {r.batch_size for r in report.rows} == {1, 4}


def test_onnxruntime_missing_is_skipped_with_a_note(monkeypatch):
    from pt2kit.benchmark import modes

    real = modes.importlib.util.find_spec
    monkeypatch.setattr(modes.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    report = pt2kit.bench(case("linear_relu") + ":model", modes="eager,onnxruntime", warmup=0, iters=2)
    skipped = [o for o in report.outcomes if o.mode is BenchMode.ONNXRUNTIME][0]
    assert skipped.status is ModeStatus.SKIPPED and "pip install onnxruntime" in skipped.reason
    assert report.ok and [r.mode for r in report.rows] == [BenchMode.EAGER]
    assert "skipped: onnxruntime" in str(report)


@pytest.mark.parametrize("args, needle", [
    (["--modes", "eager,tensorrt"], "tensorrt"),
    (["--batch-sizes", "1,x"], "--batch-sizes 1,x"),
    (["--batch-sizes", "0"], "at least 1"),
    (["--device", "tpu"], "tpu"),
    (["--dtype", "int8"], "int8"),
    (["--plot", "chart.jpg"], ".png"),
    (["--iters", "0"], "iters"),
])
def test_bad_usage_is_one_line_exit_2(cli, args, needle):
    check_one_line_error(cli("bench", f"{case('linear_relu')}:model", *args), needle)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(cli):
    check_one_line_error(cli("bench", f"{case('linear_relu')}:model", "--device", "cuda"), "--device cpu")


def test_plot_without_matplotlib_says_what_to_install(cli, monkeypatch):
    from pt2kit.benchmark import plot

    real = plot.importlib.util.find_spec
    monkeypatch.setattr(plot.importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    check_one_line_error(cli("bench", f"{case('linear_relu')}:model", "--plot", "c.png"), "pip install matplotlib")


def test_modes_parse_in_pipeline_order_and_aoti_raw_means_aoti():
    assert parse_modes("aoti,eager") == (BenchMode.EAGER, BenchMode.AOTI)
    assert parse_modes(["aoti-raw"]) == (BenchMode.AOTI,)
    with pytest.raises(UsageError, match="choose from"):
        parse_modes(" , ")


def test_batch_layout_resizes_every_input_sharing_the_batch():
    ids, mask, table = torch.arange(6).reshape(2, 3), torch.ones(2, 3), torch.zeros(5, 2)
    layout = batch_layout((ids, table), {"mask": mask}, ["ids", "table"])
    assert (layout.size, layout.positions, layout.keys, layout.names) == (2, (0,), ("mask",), ("ids", "mask"))
    (big, same), kw = layout.resize((ids, table), {"mask": mask}, 5)
    assert big.shape == (5, 3) and torch.equal(big[2:4], ids) and same is table and kw["mask"].shape == (5, 3)
    assert layout.resize((ids, table), {"mask": mask}, 1)[0][0].shape == (1, 3)
    assert layout.dynamic_spec(1, 8) == "ids:0=batch[1,8],mask:0=batch[1,8]"
    assert parse_batch_sizes("8, 1,8") == (8, 1)


def test_percentiles_interpolate_and_interleaving_rotates():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5 and percentile([5.0], 99) == 5.0
    order: list[str] = []
    calls = {name: (lambda n=name: order.append(n)) for name in "abc"}
    samples = interleaved(Timer("cpu"), calls, rounds=3)
    assert order == list("abcbcacab") and all(len(v) == 3 for v in samples.values())
