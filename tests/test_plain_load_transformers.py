"""Issue 12.1 and 12.2 on real transformers models (tests/architectures.py): a program pt2kit exports is called
exactly as the model is, `torch.export.load(p).module()(**kwargs)`, static and dynamic, and equals eager; a
decoder's program (its output holds a `DynamicCache`) loads in a fresh process with plain `torch.export.load`
after the one documented call, `pt2kit.register_types(path)`.

One model per family (encoder, decoder, encoder-decoder, vision, audio), not the whole set: the 25 are
exported by tests/test_architectures.py already, and this adds 10 exports, about a minute on 2 idle cores."""

import subprocess
import sys

import pytest
import torch
from torch.utils import _pytree as pytree

pytest.importorskip("transformers")

import architectures  # noqa: E402  (tests/ is on sys.path through conftest)

import pt2kit  # noqa: E402
from pt2kit import progress  # noqa: E402

pytestmark = pytest.mark.slow
MODELS = ["bert", "gpt2", "t5", "vit", "wav2vec2"]


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    """name, shapes -> (the .pt2 path, the eager module, its example kwargs)."""
    folder = tmp_path_factory.mktemp("plain")
    built = {}
    progress.set_quiet(True)
    try:
        for name in MODELS:
            entry = architectures.SURVEY[name]
            module = entry["model"]()
            for shapes in ("static", "dynamic"):
                target = pt2kit.Target(f"architectures.py:{name}", module, (), dict(entry["kwargs"]))
                path = folder / f"{name}-{shapes}.pt2"
                pt2kit.export_program(target, path, dynamic=entry["dynamic"] if shapes == "dynamic" else "",
                                      check_specialization=False)
                built[name, shapes] = (path, module, dict(entry["kwargs"]))
    finally:
        progress.set_quiet(False)
    return built


def _other_sizes(kwargs: dict) -> dict:
    """The same inputs at batch 3 and a shorter sequence: sizes the dynamic program must take."""
    generator = torch.Generator().manual_seed(1)
    out = {}
    for key, value in kwargs.items():
        shape = (3,) + tuple(value.shape[1:])
        if not value.is_floating_point():
            shape = (3, max(value.shape[1] - 2, 2))
            out[key] = (torch.randint(0, architectures.VOCAB, shape, generator=generator) if "ids" in key
                        else torch.ones(shape, dtype=value.dtype))
        else:
            out[key] = torch.randn(shape, generator=generator)
    return out


def _assert_equal(expected, got, where):
    exp, act = pytree.tree_leaves(expected), pytree.tree_leaves(got)
    assert len(exp) == len(act), where
    for a, b in zip(exp, act):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4, msg=lambda m: f"{where}: {m}")


@pytest.mark.parametrize("shapes", ["static", "dynamic"])
@pytest.mark.parametrize("name", MODELS)
def test_plain_torch_export_load_takes_the_models_own_call(programs, name, shapes):
    path, module, kwargs = programs[name, shapes]
    program = torch.export.load(path).module()  # in this process the cache types are registered by the export
    calls = [kwargs] + ([_other_sizes(kwargs)] if shapes == "dynamic" else [])
    for call in calls:
        with torch.no_grad():
            _assert_equal(module(**call), program(**call), f"{name} [{shapes}] {[tuple(v.shape) for v in call.values()]}")


_FRESH = """
import sys, torch, pt2kit
from torch.utils import _pytree as pytree
path, data = sys.argv[1], torch.load(sys.argv[2])
try:
    torch.export.load(path)
    print("plain load: ok")
except Exception as exc:
    print("plain load: " + str(exc).splitlines()[0])
print(pt2kit.register_types(path))
out = torch.export.load(path).module()(**data["kwargs"])
leaves = pytree.tree_leaves(out)
assert len(leaves) == len(data["expected"]), (len(leaves), len(data["expected"]))
for got, want in zip(leaves, data["expected"]):
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
print("cache: " + ", ".join(type(v).__name__ for v in out.values() if "Cache" in type(v).__name__))
"""


def test_a_decoder_program_loads_in_a_fresh_process_after_register_types(programs, tmp_path):
    path, module, kwargs = programs["gpt2", "dynamic"]
    call = _other_sizes(kwargs)
    with torch.no_grad():
        expected = pytree.tree_leaves(module(**call))
    torch.save({"kwargs": call, "expected": expected}, tmp_path / "data.pt")
    proc = subprocess.run([sys.executable, "-c", _FRESH, str(path), str(tmp_path / "data.pt")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # without the call, torch cannot read the spec of the cache pt2kit registered (what the README says)
    assert "plain load: ok" not in proc.stdout and "in pytree is not registered" in proc.stdout + proc.stderr
    assert "transformers.cache_utils.DynamicCache" in proc.stdout and "cache: DynamicCache" in proc.stdout


def test_inspect_reads_a_decoder_program_in_a_fresh_process(programs):
    """pt2kit's own readers of a `.pt2` (inspect, compile from a file) restore the types before torch reads it."""
    from conftest import run_subprocess

    path, _, _ = programs["gpt2", "static"]
    result = run_subprocess("inspect", path)
    assert result.code == 0, result.err
    assert "signature: forward(*, input_ids: int64[2, 8], attention_mask: int64[2, 8])" in result.out
