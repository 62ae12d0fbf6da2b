"""transformers models from tiny configs (random weights, no downloads) with dynamic batch and sequence length.

Each model is exported once (module fixture), loaded with `pt2kit.load`, and run at several sizes
inside the ranges; outputs must equal eager. The BERT export starts from a batch-1 example and a
sequence range wider than its position table, so it goes through repair on a real model.
"""

import pytest
import torch

import pt2kit
from conftest import case, check_one_line_error
from pt2kit.shapes.repair import FixKind

pytestmark = pytest.mark.slow  # each export takes ~10-20 s on a CI core

SIZES = [(1, 2), (3, 17), (16, 64)]  # (batch, seq) at both ends of the ranges and between


def text_inputs(batch: int, seq: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    mask[0, seq // 2:] = 0 if seq > 2 else 1  # some padding, so the mask matters
    return {"input_ids": torch.randint(0, 120, (batch, seq), generator=g), "attention_mask": mask}


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    inputs = [pt2kit.parse_input("input_ids=int64[1,8]@0..120"), pt2kit.parse_input("attention_mask=int64[1,8]@1..2")]
    target = pt2kit.load_target(f"{case('dyn_tiny_bert')}:model", inputs)
    dynamic = "input_ids:0=batch[1,16],input_ids:1=seq[2,128],attention_mask:0=batch,attention_mask:1=seq"
    result = pt2kit.export_program(target, tmp_path_factory.mktemp("bert") / "bert.pt2", dynamic=dynamic)
    return target.module, result


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    target = pt2kit.load_target(f"{case('dyn_tiny_gpt2')}:model")  # the file's dynamic: batch[1,16], seq[2,64]
    result = pt2kit.export_program(target, tmp_path_factory.mktemp("gpt2") / "gpt2.pt2")
    return target.module, result


def test_bert_is_repaired_then_runs_at_several_sizes_equal_to_eager(bert):
    eager, result = bert
    kinds = {r.kind: r for r in result.shape_repair.repairs}
    assert kinds[FixKind.NARROW].dim == "seq" and kinds[FixKind.NARROW].after == "[2, 64]"  # the 64-row position table
    assert kinds[FixKind.RESIZE_EXAMPLE].dim == "batch"  # the batch-1 example did not pin batch
    assert {(d.name, d.min, d.max) for d in result.manifest.dims} == {("batch", 1, 16), ("seq", 2, 64)}
    model = pt2kit.load(result.path)
    for batch, seq in SIZES:
        inputs = text_inputs(batch, seq)
        with torch.no_grad():
            got, want = model(**inputs), eager(**inputs)
        torch.testing.assert_close(got["last_hidden_state"], want.last_hidden_state, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got["pooler_output"], want.pooler_output, atol=1e-5, rtol=1e-5)


def test_bert_sizes_outside_the_ranges_are_one_line_errors(cli, bert):
    _, result = bert
    check_one_line_error(cli("run", result.path, "-i", "input_ids=int64[2,65]@0..120", "-i", "attention_mask=int64[2,65]@1..2"),
                         "`input_ids` dim 1", "size 65", "`seq` [2, 64]")
    check_one_line_error(cli("run", result.path, "-i", "input_ids=int64[2,8]@0..120", "-i", "attention_mask=int64[3,8]@1..2"),
                         "`attention_mask` dim 0", "size 3", "`batch`", "must be equal")


def test_gpt2_runs_at_several_sizes_equal_to_eager(gpt2):
    eager, result = gpt2
    assert result.shape_repair is None
    assert {(d.name, d.min, d.max) for d in result.manifest.dims} == {("batch", 1, 16), ("seq", 2, 64)}
    model = pt2kit.load(result.path)
    for batch, seq in SIZES:
        inputs = text_inputs(batch, seq)
        with torch.no_grad():
            torch.testing.assert_close(model(**inputs), eager(**inputs), atol=1e-5, rtol=1e-5)
