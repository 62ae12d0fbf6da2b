"""`pt2kit migrate` on a traced transformers model, and a migrated program through `compile` and `run` (slow)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from migrate_cases import build_archive, load_case
from pt2kit.migrate import Strategy, migrate_model

pytestmark = pytest.mark.slow


def test_traced_bert_is_migrated_from_its_recorded_shapes_and_verified(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64, torchscript=True, return_dict=False)
    torch.manual_seed(0)
    model = transformers.BertModel(config).eval()
    ids, mask = torch.randint(0, 100, (2, 16)), torch.ones(2, 16, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(model, (ids, mask)), str(tmp_path / "bert.pt"))
    result = migrate_model(tmp_path / "bert.pt", tmp_path / "bert.pt2", verify=True, samples=2,
                           dynamic="input_ids:0=batch[1,8],attention_mask:0=batch")
    assert result.ok and result.strategy is Strategy.TS2EP, result
    assert "input_ids=int64[2,16], attention_mask=int64[2,16]" in result.inputs_from
    assert [o.name for o in result.manifest.outputs] == ["output[0]", "output[1]"]
    (batch,) = result.manifest.dims  # the trace recorded aten::size for the batch, so it can stay dynamic
    assert (batch.name, batch.min, batch.max) == ("batch", 1, 8)
    assert result.verification.ok and {dict(c.sizes).get("batch") for c in result.verification.cases} == {2, 1, 8}
    # the program matches the original Python model on real token ids, not only the verify inputs
    import pt2kit

    program = pt2kit.load(result.path)
    ids, mask = torch.randint(0, 100, (5, 16)), torch.ones(5, 16, dtype=torch.long)
    with torch.no_grad():
        expected, got = model(ids, mask), program(ids, mask)
    torch.testing.assert_close(got[0], expected[0], rtol=1e-4, atol=1e-5)


def test_migrated_program_compiles_verifies_and_runs(cli, tmp_path):
    archive = build_archive(load_case("m01_branch_on_sum"), tmp_path / "m.pt")
    r = cli("migrate", archive, "-o", tmp_path / "m.pt2", "--input", "x=float32[4,8]", "--dynamic", "x:0=batch[1,32]",
            "--verify", "-q")
    assert r.code == 0, r.err
    r = cli("compile", tmp_path / "m.pt2", "-o", tmp_path / "m.aoti.pt2", "--verify", "--samples", "2", "--no-cache",
            "--json", "-q")
    assert r.code == 0, r.err
    assert json.loads(r.out)["verify"]["ok"]
    r = cli("run", tmp_path / "m.aoti.pt2", "--input", "x=float32[9,8]", "--json", "-q")
    assert r.code == 0, r.err
    (output,) = json.loads(r.out)["outputs"]
    assert output["shape"] == [9, 8] and output["dtype"] == "float32"  # a batch the example did not have
