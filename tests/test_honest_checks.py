"""Checks that report what they did: a check that could not run says so, a wrong mode is marked wrong, a figure
is measured (not written as 0.0), a size counts only its own files, a patch exists only for a verified program,
a crashed survey row is read whole or not at all, and a benchmark never reports an earlier run's file."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch

from pt2kit.benchmark import BenchMode
from pt2kit.benchmark.modes import BuildContext, build
from pt2kit.target.resolve import load_target

from conftest import ROOT, case

PER_SIZE_SCALE = '''
import torch
from torch import nn


class PerSizeScale(nn.Module):
    """A scale looked up by the batch size as a string key: fine with static sizes, a KeyError when re-traced with
    a symbolic size (whose string is the symbol's name)."""

    scales = {"5": 2.0}

    def forward(self, x):
        return x * self.scales[str(x.shape[0])]


model = PerSizeScale()
example_args = (torch.randn(5, 3),)
'''

BRANCHY = '''
import torch
from torch import nn


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x - 1


model = Branchy()
example_args = (torch.ones(2, 3),)
'''


def test_a_specialization_check_that_could_not_run_says_not_run(cli, tmp_path):
    (tmp_path / "m.py").write_text(PER_SIZE_SCALE)
    out = tmp_path / "m.pt2"
    result = cli("export", f"{tmp_path / 'm.py'}:model", "-o", out, "--json")
    assert result.code == 0, result.err
    doc = result.json()
    assert doc["specialization_check_not_run"].startswith("the re-trace with every dim dynamic raised KeyError")
    assert doc["specializations"] == []
    assert any(n.startswith("shape-specialization check not run: ") for n in doc["manifest"]["notes"])
    assert "✗ check shape specialization" in result.err  # shown failed, not done
    text = cli("export", f"{tmp_path / 'm.py'}:model", "-o", out)
    assert "note: shape-specialization check not run: the re-trace" in text.out


def test_a_check_that_ran_and_found_nothing_says_nothing(cli, tmp_path):
    result = cli("export", f"{case('linear_relu')}:model", "-o", tmp_path / "m.pt2", "--json", "-q")
    assert result.code == 0 and result.json()["specialization_check_not_run"] is None


def test_bench_marks_a_mode_whose_outputs_disagree_as_wrong(cli):
    # export bakes in the call counter it saw at trace time; eager keeps counting
    result = cli("bench", f"{case('verify_stateful')}:model", "--modes", "eager,export", "--warmup", "0", "--iters", "2",
                 "--json", "-q")
    assert result.code == 1
    doc = result.json()
    assert doc["ok"] is False
    export = doc["modes"]["export"]
    assert export["status"] == "wrong" and "outputs differ from eager" in export["reason"], export
    assert [r["outputs_match"] for r in export["batches"].values()] == [False]
    assert [r["outputs_match"] for r in doc["modes"]["eager"]["batches"].values()] == [None]  # the reference
    table = cli("bench", f"{case('verify_stateful')}:model", "--modes", "eager,export", "--warmup", "0", "--iters", "2", "-q")
    assert any(line.startswith("export") and " WRONG " in line for line in table.out.splitlines()), table.out
    assert "wrong: export: at batch 3, outputs differ from eager" in table.out


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime is not installed")
def test_onnxruntime_load_is_measured_and_its_size_counts_only_its_own_files(tmp_path):
    target = load_target(f"{case('linear_relu')}:model")
    stale = tmp_path / "onnx"
    stale.mkdir()
    (stale / "model.onnx.data").write_bytes(b"\0" * 100_000)  # an earlier run's external data, not named by this model
    built = build(BenchMode.ONNXRUNTIME, BuildContext(target, target.args, target.kwargs, None, "cpu", tmp_path, ""))
    assert built.load_s > 0.0 and built.build_s > 0.0
    assert built.artifact_bytes == (stale / "model.onnx").stat().st_size
    (out,) = built.fn(target.args, target.kwargs)
    assert torch.allclose(torch.from_numpy(out), target.module(*target.args), atol=1e-5)


def test_write_patch_is_written_only_for_a_verified_program(cli, tmp_path):
    # verify_stateful: --fix has nothing to rewrite (an empty patch), and the program fails verification
    patch, out = tmp_path / "fix.patch", tmp_path / "m.pt2"
    failed = cli("export", f"{case('verify_stateful')}:model", "--fix", "--verify", "--samples", "1",
                 "--write-patch", patch, "-o", out, "-q")
    assert failed.code == 1 and "was not written: the program failed verification" in failed.err
    assert not patch.exists() and not out.exists()
    (tmp_path / "m.py").write_text(BRANCHY)
    passed = cli("export", f"{tmp_path / 'm.py'}:model", "--fix", "--verify", "--samples", "1",
                 "--write-patch", patch, "-o", out, "-q")
    assert passed.code == 0, passed.err
    assert out.exists() and "torch.cond" in patch.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fix.patch", "m.pt2", "m.py"]


KILLS_ITSELF_IN_VERIFY = '''
import os
import signal
import torch


class KillsItselfAfterExport(torch.nn.Module):
    """Runs normally until the survey child has written its partial row (after export), then dies by SIGKILL."""

    def forward(self, x):
        row = os.environ.get("PT2KIT_SURVEY_ROW_FILE")
        if row and os.path.exists(row) and not torch.compiler.is_exporting():
            os.kill(os.getpid(), signal.SIGKILL)
        return x + 1


SURVEY = {"killed": {"model": KillsItselfAfterExport, "args": (torch.ones(2, 3),)}}
'''


@pytest.mark.slow  # a child process per row
def test_an_isolated_row_killed_after_export_keeps_its_export_and_charges_verify(cli, tmp_path):
    (tmp_path / "k.py").write_text(KILLS_ITSELF_IN_VERIFY)
    result = cli("survey", tmp_path / "k.py", "--isolate", "--timeout", "300", "--stages", "export,verify", "--json", "-q")
    assert result.code == 1
    (row,) = result.json()["rows"]
    assert row["stages"]["export"]["status"] == "ok"
    assert row["stages"]["verify"]["status"] == "failed" and "SIGKILL" in row["stages"]["verify"]["message"], row


def test_a_survey_row_file_is_written_whole(tmp_path, monkeypatch):
    from pt2kit.survey.run import SurveyOptions, run_row
    from pt2kit.survey.targets import collect_entries

    row_file = tmp_path / "row.json"
    monkeypatch.setenv("PT2KIT_SURVEY_ROW_FILE", str(row_file))
    (entry,) = collect_entries([f"{case('linear_relu')}:model"], None, [], None, 0)
    row = run_row(entry, "static", SurveyOptions(stages=("export",)), tmp_path)
    assert json.loads(row_file.read_text())["stages"]["export"]["status"] == "ok" and row.ok
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("row")) == ["row.json"]  # no .tmp left


def test_bench_gpu_counts_only_a_json_this_run_wrote(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))  # bench_models
    try:
        spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "gpu" / "bench_gpu.py")
        bench_gpu = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench_gpu)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    path = tmp_path / "resnet50_float32.json"
    path.write_text(json.dumps({"run_id": "an-earlier-run"}))
    assert not bench_gpu.fresh_result(path, 0, "this-run")  # an old file from a previous run
    path.write_text(json.dumps({"run_id": "this-run"}))
    assert bench_gpu.fresh_result(path, 0, "this-run")
    assert not bench_gpu.fresh_result(path, 1, "this-run")  # the child failed after writing
    assert not bench_gpu.fresh_result(path, "timeout", "this-run")
    path.write_text('{"run_id": "this-')  # cut short
    assert not bench_gpu.fresh_result(path, 0, "this-run")
    assert not bench_gpu.fresh_result(tmp_path / "missing.json", 0, "this-run")


def test_bench_holds_a_lower_precision_artifact_to_its_precision():
    from pt2kit.benchmark.agreement import agreement

    expected = torch.linspace(-3, 3, 64).reshape(8, 8)
    close = agreement(expected, expected.to(torch.bfloat16), device="cpu", compute="float32", tf32=False)
    assert close.ok, close  # bf16 rounding of the same values: within bf16 tolerance, not "dtype differs"
    far = agreement(expected, (expected + 1).to(torch.bfloat16), device="cpu", compute="float32", tf32=False)
    assert not far.ok and "output 0" in far.problem
    wider = agreement(expected.to(torch.bfloat16), expected, device="cpu", compute="float32", tf32=False)
    assert not wider.ok and "dtype" in wider.problem  # a mode returning a wider dtype than eager is still wrong
