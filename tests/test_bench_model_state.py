"""`bench` never changes the user's model: every mode, alone and together, on a model with BatchNorm and Dropout.

The model's state (each submodule's training flag, every parameter and buffer with its values and requires_grad)
is compared before and after; the harness's own guard (`ModelState`) is tested on a mode made to misbehave.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import pt2kit
from pt2kit import progress
from pt2kit.benchmark import BenchMode, ModeStatus
from pt2kit.benchmark.model_state import ModelState
from pt2kit.target.resolve import load_target

from conftest import case

CHEAP = ("eager", "export", "onnxruntime")


def state_of(module: nn.Module) -> tuple:
    """Everything `bench` must leave alone, as plain comparable values."""
    flags = tuple(m.training for m in module.modules())
    tensors = tuple((name, t.detach().clone(), t.requires_grad, t) for name, t in
                    itertools.chain(module.named_parameters(), module.named_buffers()))
    return flags, tensors


def assert_unchanged(before: tuple, module: nn.Module) -> None:
    flags, tensors = before
    assert tuple(m.training for m in module.modules()) == flags
    now = dict(itertools.chain(module.named_parameters(), module.named_buffers()))
    assert set(now) == {name for name, *_ in tensors}
    for name, values, requires_grad, obj in tensors:
        assert now[name] is obj, name
        assert now[name].requires_grad == requires_grad and torch.equal(now[name].detach(), values), name


def bench_quietly(target, **options):
    progress.set_quiet(True)
    try:
        return pt2kit.bench(target, warmup=0, iters=1, threads=1, **options)
    finally:
        progress.set_quiet(False)


@pytest.mark.parametrize("modes", [",".join(c) for n in (1, 2, 3) for c in itertools.combinations(CHEAP, n)])
def test_every_combination_of_the_cheap_modes_leaves_the_model_as_found(modes):
    target = load_target(case("batchnorm_dropout") + ":model")
    before = state_of(target.module)
    report = bench_quietly(target, modes=modes)
    assert report.ok, [str(o) for o in report.outcomes]
    assert all(r.outputs_match in (None, True) for r in report.rows)
    assert_unchanged(before, target.module)


def test_compile_with_every_cheap_mode_leaves_the_model_as_found():
    target = load_target(case("batchnorm_dropout") + ":model")
    before = state_of(target.module)
    report = bench_quietly(target, modes="compile," + ",".join(CHEAP))
    assert report.ok and {o.status for o in report.outcomes} == {ModeStatus.OK}, report.outcomes
    assert_unchanged(before, target.module)


@pytest.mark.slow
def test_every_mode_with_aoti_leaves_the_model_as_found(build_cache_dir):
    """All default modes in one run (one AOTInductor build), as `pt2kit bench examples/models.py:cnn` runs them."""
    target = load_target(case("batchnorm_dropout") + ":model")
    before = state_of(target.module)
    report = bench_quietly(target)
    statuses = {o.mode: o.status for o in report.outcomes}
    assert set(statuses) == {BenchMode.EAGER, BenchMode.COMPILE, BenchMode.EXPORT, BenchMode.AOTI, BenchMode.AOTI_RAW,
                             BenchMode.ONNXRUNTIME}
    assert set(statuses.values()) == {ModeStatus.OK}, report.outcomes
    assert all(r.outputs_match in (None, True) for r in report.rows)
    assert_unchanged(before, target.module)


def test_a_mode_that_changes_the_model_is_named_and_the_model_restored(monkeypatch):
    """A builder that flips the model to training mode and bumps a buffer: reported, undone, later modes still right."""
    from pt2kit.benchmark import harness

    real = harness.build

    def meddling(mode, ctx):
        built = real(mode, ctx)
        if mode is BenchMode.EXPORT:
            ctx.target.module.train()
            with torch.no_grad():
                ctx.target.module.norm.running_mean.add_(1)
        return built

    monkeypatch.setattr(harness, "build", meddling)
    target = load_target(case("batchnorm_dropout") + ":model")
    before = state_of(target.module)
    report = bench_quietly(target, modes="eager,export,onnxruntime")
    outcomes = {o.mode: o for o in report.outcomes}
    changed = outcomes[BenchMode.EXPORT]
    assert changed.status is ModeStatus.CHANGED_MODEL and not report.ok
    assert "building it changed the model" in changed.reason and "training mode" in changed.reason
    assert "values of buffer `norm.running_mean`" in changed.reason
    assert outcomes[BenchMode.ONNXRUNTIME].status is ModeStatus.OK  # ran on the restored model, and agrees with eager
    assert report.row("export", 4) is None and report.row("onnxruntime", 4).outputs_match is True
    assert "changed-model: export: building it changed the model" in str(report)
    assert report.to_json()["modes"]["export"]["status"] == "changed-model"
    assert_unchanged(before, target.module)


def test_the_callers_model_gets_its_mode_dtype_and_flags_back():
    """The API prepares the model (eval, `--dtype`) in place; the caller's training model comes back as it was."""
    target = load_target(case("batchnorm_dropout") + ":model")
    target.module.train()
    target.module.down.weight.requires_grad_(False)
    before = state_of(target.module)
    report = bench_quietly(target, modes="eager,export", dtype="bfloat16")
    assert report.ok and report.dtype == "bfloat16"
    assert_unchanged(before, target.module)
    assert target.module.down.weight.dtype == torch.float32


def test_a_model_that_changes_itself_is_a_note_not_a_mode_failure():
    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.register_buffer("calls", torch.zeros((), dtype=torch.long))

        def forward(self, x):
            self.calls.add_(1)
            return self.lin(x)

    model = Counting().eval()
    report = bench_quietly(pt2kit.Target("Counting", model, (torch.randn(2, 4),)), modes="eager,export")
    assert report.ok, report.outcomes
    assert any("changes its own state when called" in n for n in report.notes)
    assert int(model.calls) == 0


def test_model_state_lists_and_undoes_each_kind_of_change():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout()).eval()
    weight, bias, mean = model[0].weight, model[0].bias, model[1].running_mean
    state = ModelState.capture(model)
    assert state.changes() == []
    model[2].train()
    with torch.no_grad():
        weight.mul_(2)
    bias.requires_grad_(False)
    model[1].running_mean = torch.ones(2)
    model.to(torch.float64)
    changes = state.changes()
    assert "`2` put in training mode" in changes
    assert "values of parameter `0.weight`" not in changes  # a dtype change is reported as such
    assert "parameter `0.weight` became float64[2, 2] on cpu (was float32[2, 2] on cpu)" in changes
    assert "requires_grad of `0.bias` True -> False" in changes
    assert "buffer `1.running_mean` replaced by another object" in changes
    state.restore()
    assert state.changes() == []
    assert model[0].weight is weight and model[1].running_mean is mean and weight.dtype == torch.float32
    assert not model[2].training and bias.requires_grad
