"""Inference: a dynamic spec proposed from two or more sample input sets."""

import pytest
import torch
from safetensors.torch import save_file

import pt2kit
from conftest import case, check_one_line_error
from pt2kit.errors import InputSpecError
from pt2kit.shapes.inference import infer_shapes, parse_sample


def sample(*tensors, **named):
    return tuple(tensors), named


def test_dims_that_differ_become_dynamic_with_the_span_seen():
    inferred = infer_shapes([sample(torch.zeros(2, 16)), sample(torch.zeros(8, 16)), sample(torch.zeros(5, 16))], ["x"])
    assert str(inferred.spec) == "x:0=batch[2,8]"
    assert [(o.input, o.dim, o.sizes, o.name) for o in inferred.observations] == [
        ("x", 0, (2, 8, 5), "batch"), ("x", 1, (16, 16, 16), None)]


def test_dims_that_always_agree_share_one_name_across_inputs():
    ids = [torch.zeros(b, s, dtype=torch.int64) for b, s in ((2, 7), (4, 9))]
    masks = [torch.ones(b, s, dtype=torch.int64) for b, s in ((2, 7), (4, 9))]
    inferred = infer_shapes([sample(i, attention_mask=m) for i, m in zip(ids, masks)], ["input_ids", "attention_mask"])
    assert str(inferred.spec) == "input_ids:0=batch[2,4],input_ids:1=seq[7,9],attention_mask:0=batch,attention_mask:1=seq"
    scope: dict = {}
    exec(inferred.spec.code(), scope)
    shapes = scope["dynamic_shapes"]
    assert shapes["input_ids"][0] is shapes["attention_mask"][0] and shapes["input_ids"][1] is shapes["attention_mask"][1]


def test_names_come_from_sizes_not_positions():
    # dim 0 of two inputs varies differently: two dims, two names, though both sit where `batch` usually does
    inferred = infer_shapes([sample(torch.zeros(2, 3), torch.zeros(5, 3)), sample(torch.zeros(4, 3), torch.zeros(6, 3))], ["a", "b"])
    assert str(inferred.spec) == "a:0=batch[2,4],b:0=b_batch[5,6]"
    images = [torch.zeros(1, 3, h, w) for h, w in ((32, 48), (64, 48), (32, 96))]
    assert str(infer_shapes([sample(x) for x in images], ["img"]).spec) == "img:2=height[32,64],img:3=width[48,96]"


def test_equal_dims_of_one_input_are_merged_and_said_so():
    inferred = infer_shapes([sample(torch.zeros(1, 3, s, s)) for s in (32, 64)], ["img"])
    assert str(inferred.spec) == "img:2=height[32,64],img:3=height"
    assert any("had equal sizes in every sample" in n for n in inferred.notes)


def test_no_dim_differs_gives_an_empty_spec():
    inferred = infer_shapes([sample(torch.zeros(2, 3)), sample(torch.ones(2, 3))], ["x"])
    assert not inferred.spec and "nothing is dynamic" in str(inferred)


def test_example_is_the_first_sample_with_no_dynamic_dim_below_two():
    inferred = infer_shapes([sample(torch.zeros(1, 3)), sample(torch.zeros(6, 3))], ["x"])
    assert inferred.example == 1 and str(inferred.spec) == "x:0=batch[1,6]"


@pytest.mark.parametrize(
    "samples, message",
    [
        ([sample(torch.zeros(2, 3))], "two or more samples"),
        ([sample(torch.zeros(2, 3)), sample(torch.zeros(2, 3, 1))], "rank"),
        ([sample(torch.zeros(2, 3)), sample(torch.zeros(2, 3, dtype=torch.int64))], "int64 in sample 2"),
        ([sample(x=torch.zeros(2)), sample(y=torch.zeros(2))], "the same inputs"),
    ],
)
def test_samples_that_cannot_be_compared_are_usage_errors(samples, message):
    with pytest.raises(InputSpecError, match=message):
        infer_shapes(samples, ["x"])


def test_sample_specs_split_on_spaces_outside_brackets(tmp_path):
    specs = parse_sample("x=float32[2, 16] mask=bool[2,16]")
    assert [(s.name, s.shape) for s in specs] == [("x", (2, 16)), ("mask", (2, 16))]
    path = tmp_path / "a.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    (spec,) = parse_sample(str(path))
    assert spec.kind == "file" and spec.path == path


def test_export_from_sample_files_then_run_inside_and_outside(cli, tmp_path):
    for i, (b, s) in enumerate(((2, 5), (4, 9))):
        save_file({"x": torch.randn(b, s, 6), "mask": torch.ones(b, s)}, str(tmp_path / f"s{i}.safetensors"))
    out = tmp_path / "m.pt2"
    result = cli("export", f"{case('two_inputs_dict_out')}:model", "-o", out,
                 "--sample", tmp_path / "s0.safetensors", "--sample", tmp_path / "s1.safetensors")
    assert result.code == 0, result.err
    assert "--dynamic x:0=batch[2,4],x:1=seq[5,9],mask:0=batch,mask:1=seq" in result.out
    assert "dynamic_shapes = {'x': {0: batch, 1: seq}, 'mask': {0: batch, 1: seq}}" in result.out
    assert cli("run", out, "-i", "x=float32[3,7,6]", "-i", "mask=float32[3,7]").code == 0
    check_one_line_error(cli("run", out, "-i", "x=float32[3,7,6]", "-i", "mask=float32[3,8]"),
                         "`mask` dim 1", "size 8", "`seq`", "must be equal")


def test_export_from_sample_specs_json(cli, tmp_path):
    result = cli("export", f"{case('linear_relu')}:model", "-o", tmp_path / "m.pt2", "--json",
                 "--sample", "input=float32[1,16]", "--sample", "input=float32[32,16]")
    assert result.code == 0, result.err
    data = result.json()
    assert data["inferred"]["dynamic"] == "input:0=batch[1,32]" and data["inferred"]["example"] == 1
    assert [(d["name"], d["min"], d["max"]) for d in data["manifest"]["dims"]] == [("batch", 1, 32)]


def test_one_sample_or_sample_with_dynamic_is_exit_2(cli, tmp_path):
    target = f"{case('linear_relu')}:model"
    check_one_line_error(cli("export", target, "-o", tmp_path / "m.pt2", "--sample", "input=float32[2,16]"), "two or more samples")
    check_one_line_error(cli("export", target, "-o", tmp_path / "m.pt2", "--dynamic", "input:0=b",
                             "--sample", "input=float32[2,16]", "--sample", "input=float32[3,16]"), "not both")


def test_library_infer_dynamic_feeds_export_program(tmp_path):
    samples = [sample(torch.randn(b, 16)) for b in (3, 12)]
    spec = pt2kit.infer_dynamic(samples, ["input"])
    result = pt2kit.export_program(pt2kit.load_target(f"{case('linear_relu')}:model"), tmp_path / "m.pt2", dynamic=spec)
    assert [(d.name, d.min, d.max) for d in result.manifest.dims] == [("batch", 3, 12)]
