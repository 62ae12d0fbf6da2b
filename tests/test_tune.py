"""`pt2kit tune`: candidates verified against float32 eager, one forced to fail, the choice in the manifest."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pt2kit
from pt2kit.artifact.package import read_manifest
from pt2kit.tune import plan_candidates
from pt2kit.tune.layout import to_channels_last

from conftest import case, check_one_line_error

# atol/rtol 1e-5: float32 builds pass, bfloat16 ones (about 1e-2 off) cannot: the candidate forced to fail
STRICT = ["--recipes", "default", "--dtypes", "fp32,bf16", "--atol", "1e-5", "--rtol", "1e-5", "--iters", "5", "-q"]


@pytest.fixture(scope="session")
def tuned(linear_program, build_cache_dir, tmp_path_factory):
    from conftest import CliResult
    from pt2kit import progress
    from pt2kit.cli import main
    import contextlib
    import io

    out = tmp_path_factory.mktemp("tune") / "linear.tuned.pt2"
    runs = []
    for _ in range(2):  # the second tune of the same model comes from the build cache
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = main(["tune", str(linear_program), "-o", str(out), "--json", *STRICT])
        progress.set_quiet(False)
        runs.append(CliResult(code, buffer.getvalue(), ""))
    return out, runs[0], runs[1]


@pytest.mark.slow
def test_json_reports_every_candidate_and_the_choice(tuned):
    out, first, _ = tuned
    assert first.code == 0, first.out
    doc = first.json()
    assert doc["chosen"] == "default-fp32" and doc["output"] == str(out)
    by_name = {c["name"]: c for c in doc["candidates"]}
    assert set(by_name) == {"default-fp32", "default-bf16"}
    for c in doc["candidates"]:
        assert {"name", "config", "p50_ms", "max_abs_err", "ok", "build_s", "status"} <= set(c)
        assert c["config"]["recipe"] == "default" and c["build_s"] > 0
    good, bad = by_name["default-fp32"], by_name["default-bf16"]
    assert good["ok"] and good["status"] == "chosen" and good["p50_ms"] > 0 and good["max_abs_err"] <= 1e-5
    assert not bad["ok"] and bad["status"] == "failed verification" and bad["p50_ms"] is None
    assert bad["max_abs_err"] > 1e-5 and "beyond tolerance" in bad["reason"]


@pytest.mark.slow
def test_the_manifest_records_the_choice_and_load_uses_it(tuned, linear_program):
    out, _, last = tuned  # the second tune wrote `out` last
    manifest = read_manifest(out)
    assert manifest.tuned["candidate"] == "default-fp32" and manifest.tuned["config"]["dtype"] == "fp32"
    assert manifest.tuned["p50_ms"] == pytest.approx(last.json()["candidates"][0]["p50_ms"], abs=1e-4)  # JSON rounds to 4 places
    assert manifest.tuned["atol"] == 1e-5 and manifest.load_options == {"cuda_graphs": False}
    model = pt2kit.load(out)
    eager = pt2kit.load_target(f"{case('linear_relu')}:model").module
    x = torch.randn(5, 16)
    assert torch.allclose(model(x), eager(x), atol=1e-5)


@pytest.mark.slow
def test_a_second_tune_comes_from_the_build_cache(tuned):
    _, first, second = tuned
    assert second.code == 0 and second.json()["chosen"] == first.json()["chosen"]
    assert all(c["cached"] for c in second.json()["candidates"])


@pytest.mark.slow
def test_time_budget_skips_later_builds_and_the_table_lists_each(linear_program, build_cache_dir, tmp_path, cli):
    result = cli("tune", linear_program, "-o", tmp_path / "t.pt2", "--time-budget", "0.001", *STRICT)
    assert result.code == 0
    assert "default-fp32" in result.out and "skipped: time budget" in result.out and "chose default-fp32" in result.out


@pytest.mark.slow
def test_bench_times_an_existing_artifact_beside_eager(tuned, cli):
    out, _, _ = tuned
    result = cli("bench", f"{case('linear_relu')}:model", "--modes", "eager", "--artifact", out, "--iters", "3", "--warmup", "1",
                 "--json", "-q")
    assert result.code == 0, result.err
    modes = result.json()["modes"]
    assert modes["artifact"]["status"] == "ok" and modes["artifact"]["batches"]["8"]["p50_ms"] > 0 and "eager" in modes


@pytest.mark.parametrize("args,needle", [
    (["--recipes", "nope"], "unknown recipe `nope`"),
    (["--recipes", "max-autotune"], "recipe `max-autotune` is for cuda"),
    (["--dtypes", "fp7"], "unknown dtype `fp7`"),
    (["--device", "cuda"], "--device cuda"),
    (["--threads", "0"], "thread counts"),
    (["--batch-size", "0"], "--batch-size 0"),
])
def test_bad_usage_is_one_line_exit_2(cli, tmp_path, args, needle):
    if "--device" in args and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    check_one_line_error(cli("tune", f"{case('linear_relu')}:model", "-o", tmp_path / "x.pt2", *args), needle)


def test_output_must_be_a_pt2(cli, tmp_path):
    check_one_line_error(cli("tune", f"{case('linear_relu')}:model", "-o", tmp_path / "x.so"), "must end in .pt2")


def test_cuda_candidates_pair_each_build_with_a_graph_replay_twin():
    names = [c.name for c in plan_candidates("cuda", dtypes=("fp32",), recipes=("default", "coordinate-descent"), channels_last=True)]
    assert names == ["default-fp32", "default-fp32-graphs", "default-fp32-cl", "default-fp32-cl-graphs",
                     "coordinate-descent-fp32", "coordinate-descent-fp32-graphs", "coordinate-descent-fp32-cl",
                     "coordinate-descent-fp32-cl-graphs"]
    plan = plan_candidates("cuda", dtypes=("fp32",), recipes=("default",))
    assert plan[0].build_key == plan[1].build_key and plan[1].cuda_graphs  # one package, loaded twice


def test_cpu_thread_counts_are_baked_into_the_build():
    plan = plan_candidates("cpu", dtypes=("fp32",), recipes=("cpu-freeze",), threads=(1, 2))
    assert [c.name for c in plan] == ["cpu-freeze-fp32-t1", "cpu-freeze-fp32-t2"]
    assert plan[0].inductor_configs() == {"cpp.threads": 1} and not any(c.cuda_graphs for c in plan)


class _Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, images):
        return self.conv(images).relu().mean((2, 3))


def test_channels_last_keeps_the_contract_and_the_values(tmp_path):
    torch.manual_seed(0)
    target = pt2kit.Target("conv", _Conv().eval(), (torch.randn(4, 3, 8, 8),))
    result = pt2kit.export_program(target, None, dynamic="images:0=batch[1,16]", check_specialization=False)
    program, manifest = to_channels_last(result.program, result.manifest)
    assert [manifest.describe(x) for x in manifest.inputs] == ["images: float32[batch, 3, 8, 8]"]
    assert manifest.dims[0].name == "batch" and (manifest.dims[0].min, manifest.dims[0].max) == (1, 16)
    x = torch.randn(6, 3, 8, 8)
    assert torch.allclose(program.module()(x), target.module(x), atol=1e-5)


class _MadeInBf16(nn.Module):
    """A model made in bf16 with a deliberate float32 island: export writes both casts into the graph."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 4).to(torch.bfloat16)

    def forward(self, x):
        return self.linear(x).float().softmax(-1).to(torch.bfloat16)


def test_a_program_made_in_bf16_is_its_own_reference(tmp_path):
    from torch.utils import _pytree as pytree

    from pt2kit.tune.checks import Reference
    from pt2kit.verify.outputs import program_target

    x = torch.randn(2, 8, dtype=torch.bfloat16)
    path = tmp_path / "bf16.pt2"
    pt2kit.export_program(pt2kit.Target("bf16", _MadeInBf16().eval(), (x,), {}), path)
    target = program_target(path)
    _, spec = pytree.tree_flatten((target.args, target.kwargs))
    reference = Reference.compute(target.module, spec, [("example", [x])], "cpu")  # float32 would trip the graph's dtype asserts
    assert reference.note and "bfloat16" in reference.note
    assert reference.expected[0][0].dtype == torch.bfloat16
    torch.testing.assert_close(reference.expected[0][0], _load_and_run(path, x))
    float_model = nn.Linear(8, 4).eval()
    fp32 = Reference.compute(float_model, spec, [("example", [x])], "cpu")
    assert fp32.note is None and fp32.expected[0][0].dtype == torch.float32


def _load_and_run(path, x):
    with torch.no_grad():
        return pt2kit.load(path)(x)
