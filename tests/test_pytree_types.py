"""Non-pytree inputs and outputs: detection, registration, the manifest record, and loading elsewhere."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils import _pytree as pytree

import pt2kit
from conftest import case
from pt2kit.pytrees.types import find_non_pytree, register_pytree_types

TESTS = Path(__file__).resolve().parent


def _assert_same(expected, got):
    leaves_e, spec_e = pytree.tree_flatten(expected)
    leaves_g, spec_g = pytree.tree_flatten(got)
    assert spec_e == spec_g
    for e, g in zip(leaves_e, leaves_g):
        if isinstance(e, torch.Tensor):
            torch.testing.assert_close(g, e)
        else:
            assert g == e


class _Holder:
    def __init__(self, fn, t):
        self.fn = fn  # a function cannot be written into a program's spec
        self.t = t


def test_find_reports_nested_types_without_registering():
    target = pt2kit.load_target(f"{case('dataclass_output')}:model")
    out = target.module(*target.args)
    reports = find_non_pytree(out)
    names = [r.type_name.rpartition(".")[2] for r in reports]
    assert names == ["Detections", "Stats"]
    assert reports[1].path == "output.stats" and all(r.supported and not r.registered for r in reports)
    assert type(out) not in pytree.SUPPORTED_NODES


def test_unsupported_type_is_reported_with_the_reason_and_the_fix():
    (report,) = find_non_pytree({"a": _Holder(len, torch.ones(1))})
    assert not report.supported and "`fn`" in report.reason
    assert "register_pytree_node(_Holder" in str(report)
    assert not register_pytree_types({"a": _Holder(len, torch.ones(1))})[0].registered


def test_export_returns_the_same_objects_and_records_them(tmp_path):
    target = pt2kit.load_target(f"{case('dataclass_output')}:model")
    expected = target.module(*target.args)
    result = pt2kit.export_program(target, tmp_path / "det.pt2")
    recorded = [r["type"].rpartition(".")[2] for r in result.manifest.pytree_types]
    assert recorded == ["Detections", "Stats"]
    assert "Detections registered as a pytree node" in str(result)
    assert {leaf.name for leaf in result.manifest.outputs} >= {"output.boxes", "output.scores[1]", "output.stats.mean"}

    loaded = pt2kit.load(tmp_path / "det.pt2")
    got = loaded(*target.args)
    assert type(got) is type(expected) and got.dtype is torch.float32 and got.stats.label == "head"
    _assert_same(expected, got)
    bigger = torch.randn(7, 8)  # the batch dim is dynamic: the objects come back at another size too
    _assert_same(target.module(bigger), loaded(bigger))


def test_a_fresh_process_loads_with_a_stand_in_when_the_type_is_not_importable(tmp_path):
    target = pt2kit.load_target(f"{case('dataclass_output')}:model")
    pt2kit.export_program(target, tmp_path / "det.pt2", check_specialization=False)
    code = (
        "import torch, pt2kit; m = pt2kit.load(r'%s'); out = m(torch.randn(4, 8)); "
        "print(type(out).__name__, out.boxes.shape[0], out.stats.label, out.count)" % (tmp_path / "det.pt2")
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["Detections", "4", "head", "2"]


def test_transformers_cache_round_trips_through_a_fresh_process(tmp_path, cli):
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "gpt2.pt2"
    result = cli("export", f"{TESTS / 'architectures.py'}:gpt2_factory", "-o", out, "--no-specialization-check",
                 "--input", "input_ids=int64[2,6]@0..99", "--dynamic", "input_ids:0=batch[1,8],input_ids:1=seq[2,32]", "--json")
    assert result.code == 0, result.err
    manifest = result.json()["manifest"]
    assert [r["type"] for r in manifest["pytree_types"]] == [
        "transformers.cache_utils.DynamicCache", "transformers.cache_utils.DynamicLayer"]
    assert "transformers.modeling_outputs" in manifest["pytree_imports"]
    code = (
        "import torch, pt2kit; m = pt2kit.load(r'%s'); o = m(torch.randint(0, 99, (3, 5))); "
        "c = o.cache if hasattr(o, 'cache') else o.past_key_values; "  # transformers 5.24 / 5.17 field names
        "print(type(c).__name__, c.get_seq_length(), tuple(c.layers[0].keys.shape))" % out
    )
    env = dict(os.environ, TRANSFORMERS_VERBOSITY="error")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[:2] == ["DynamicCache", "5"] and proc.stdout.split()[2].startswith("(3,")
    assert transformers is not None


def test_number_attributes_come_back_as_numbers_from_a_runtime_that_returns_tensors():
    """AOTInductor packages return number outputs as 0-dim tensors; the registered type turns them back."""
    target = pt2kit.load_target(f"{case('dataclass_output')}:model")
    out = target.module(*target.args)
    register_pytree_types(out)
    leaves, spec = pytree.tree_flatten(out)
    as_runtime = [torch.tensor(v) if isinstance(v, int) else v for v in leaves]
    back = pytree.tree_unflatten(as_runtime, spec)
    assert type(back.count) is int and back.count == 2
    assert type(back.stats.label) is str and back.dtype is torch.float32


class _Flags:
    def __init__(self, t):
        self.t = t
        self.updated = {0: True, 1: False}  # as EncoderDecoderCache.is_updated
        self.sizes = [3, (4, 5)]


def test_numbers_nested_in_containers_are_restored_too():
    obj = _Flags(torch.ones(2))
    register_pytree_types(obj)
    leaves, spec = pytree.tree_flatten(obj)
    spec = pytree.treespec_loads(pytree.treespec_dumps(spec))  # as a saved program's spec
    back = pytree.tree_unflatten([v if isinstance(v, torch.Tensor) else torch.tensor(v) for v in leaves], spec)
    assert back.updated == {0: True, 1: False} and type(back.updated[0]) is bool
    assert back.sizes == [3, (4, 5)] and type(back.sizes[1][0]) is int
