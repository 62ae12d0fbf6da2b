"""Issue 12.1: the exported program keeps the model's calling convention. Inputs given by keyword stay keyword in
the program (plain `torch.export.load(p).module()(**kwargs)` works), the manifest says which are keyword,
`pt2kit.load` binds a call as `forward` would, `run` binds by name, and manifests of the old all-positional kind
still load."""

import json

import pytest
import torch
from torch.utils import _pytree as pytree

import pt2kit
from conftest import case, check_one_line_error
from pt2kit.artifact.manifest import MANIFEST_NAME, build_manifest

KW = case("keyword_inputs")


@pytest.fixture(scope="module")
def keyword_program(tmp_path_factory):
    out = tmp_path_factory.mktemp("kw") / "kw.pt2"
    target = pt2kit.load_target(f"{KW}:model")
    pt2kit.export_program(target, out, dynamic=target.dynamic, check_specialization=False)
    return out, target


def _equal(expected, got):
    exp, got = pytree.tree_leaves(expected), pytree.tree_leaves(got)
    assert len(exp) == len(got)
    for a, b in zip(exp, got):
        torch.testing.assert_close(b, a)


def test_keyword_inputs_stay_keyword_in_the_program(keyword_program):
    path, target = keyword_program
    assert target.args == () and list(target.kwargs) == ["x", "mask"]  # forward's order, whatever the dict's
    program = torch.export.load(path).module()
    x, mask = torch.randn(3, 5, 6), torch.ones(3, 5)
    with torch.no_grad():
        _equal(target.module(x=x, mask=mask), program(x=x, mask=mask))  # the model's own call, plain torch
    manifest = pt2kit.inspect_artifact(path).manifest
    assert [(leaf.name, leaf.keyword) for leaf in manifest.inputs] == [("x", True), ("mask", True)]


def test_load_binds_a_call_as_forward_does(keyword_program):
    path, target = keyword_program
    model = pt2kit.load(path)
    x, mask = torch.randn(4, 5, 6), torch.ones(4, 5)
    with torch.no_grad():
        want = target.module(x, mask)
        for args, kwargs in (((), {"x": x, "mask": mask}), ((x, mask), {}), ((x,), {"mask": mask}), ((), {"mask": mask, "x": x})):
            _equal(want, model(*args, **kwargs))
    with pytest.raises(pt2kit.InputMismatchError, match="`x` is given twice"):
        model(x, x=x, mask=mask)
    with pytest.raises(pt2kit.InputMismatchError, match="unexpected input `bias`"):
        model(x, mask, bias=x)
    with pytest.raises(pt2kit.InputMismatchError, match=r"missing input `mask`.*forward\(\*, x, mask\)"):
        model(x)


def test_run_binds_keyword_inputs_by_name_or_position(cli, keyword_program):
    path, _ = keyword_program
    assert cli("run", path, "--input", "mask=float32[3,5]", "--input", "x=float32[3,5,6]").code == 0
    assert cli("run", path, "--input", "float32[3,5,6]", "--input", "float32[3,5]").code == 0
    check_one_line_error(cli("run", path, "--input", "x=float32[3,5,6]"), "missing input `mask`")


def test_verify_passes_on_a_keyword_program(keyword_program):
    path, target = keyword_program
    report = pt2kit.verify_outputs(target, path, samples=2)
    assert report.ok, report


def test_named_cli_inputs_are_keyword_and_unnamed_positional(cli, tmp_path):
    out = tmp_path / "mixed.pt2"
    assert cli("export", f"{KW}:model", "-o", out, "-q", "--input", "float32[2,5,6]", "--input", "mask=float32[2,5]").code == 0
    spec = pytree.treespec_loads(pt2kit.inspect_artifact(out).manifest.in_spec)
    assert spec.children_specs[0].num_children == 1 and spec.children_specs[1].context == ["mask"]
    torch.export.load(out).module()(torch.randn(2, 5, 6), mask=torch.ones(2, 5))  # as exported: x by position, mask by name


def _old_style_program(path):
    """A program written as pt2kit wrote them before keyword inputs were kept: all positional, no `keyword` field."""
    source = pt2kit.load_target(f"{KW}:model").module
    x, mask = torch.randn(2, 5, 6), torch.ones(2, 5)
    ep = torch.export.export(source, (x, mask))
    data = build_manifest(ep, parameters=["x", "mask", "scale"]).to_json()
    for leaf in data["inputs"] + data["outputs"]:
        del leaf["keyword"]
    torch.export.save(ep, path, extra_files={MANIFEST_NAME: json.dumps(data, default=str)})
    return source, x, mask, data


@pytest.mark.parametrize("with_in_spec", [True, False])
def test_manifests_written_the_old_way_still_load(cli, tmp_path, with_in_spec):
    path = tmp_path / "old.pt2"
    source, x, mask, data = _old_style_program(path)
    if not with_in_spec:  # the oldest manifests: the leaves only
        data["in_spec"] = data["out_spec"] = ""
        torch.export.save(torch.export.load(path), path, extra_files={MANIFEST_NAME: json.dumps(data, default=str)})
    model = pt2kit.load(path)
    assert model.signature.positional == ("x", "mask") and model.signature.keyword == ()
    with torch.no_grad():
        want = source(x, mask)
        _equal(want, model(x, mask))
        _equal(want, model(x=x, mask=mask))
    if with_in_spec:
        assert cli("run", path, "--input", "x=float32[2,5,6]", "--input", "mask=float32[2,5]").code == 0
