import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from pt2kit.errors import InputSpecError, TensorFileError
from pt2kit.target.inputs import parse_input, read_tensors, resolve_inputs


def test_random_float_tensor_has_dtype_and_shape():
    (x,), named = resolve_inputs([parse_input("float32[4,16]")])
    assert x.dtype == torch.float32 and x.shape == (4, 16) and named == {}


def test_integer_range_is_respected():
    _, named = resolve_inputs([parse_input("ids=int64[2,128]@5..9")])
    ids = named["ids"]
    assert ids.dtype == torch.int64 and ids.min() >= 5 and ids.max() < 9


def test_uniform_float_range_and_scalars():
    _, named = resolve_inputs([parse_input("x=float32[100]@-1..1"), parse_input("n=3"), parse_input("flag=true")])
    assert named["x"].min() >= -1 and named["x"].max() < 1
    assert named["n"] == 3 and named["flag"] is True


def test_same_seed_same_tensor():
    a = resolve_inputs([parse_input("x=float32[3]")], seed=1)[1]["x"]
    b = resolve_inputs([parse_input("x=float32[3]")], seed=1)[1]["x"]
    assert torch.equal(a, b)


@pytest.mark.parametrize("text", ["x=float32[4,", "x=floaty[4]", "x=int64[2]@9..1", "3x=float32[2]", "x="])
def test_malformed_specs_are_rejected(text):
    with pytest.raises(InputSpecError):
        parse_input(text)


def test_reads_npy_pt_and_safetensors(tmp_path):
    t = torch.arange(6.0).reshape(2, 3)
    np.save(tmp_path / "x.npy", t.numpy())
    torch.save(t, tmp_path / "x.pt")
    save_file({"x": t, "y": t + 1}, str(tmp_path / "xy.safetensors"))
    assert torch.equal(read_tensors(tmp_path / "x.npy")[""], t)
    assert torch.equal(read_tensors(tmp_path / "x.pt")[""], t)
    _, named = resolve_inputs([parse_input(f"@{tmp_path / 'xy.safetensors'}")])
    assert torch.equal(named["y"], t + 1)
    _, named = resolve_inputs([parse_input(f"y=@{tmp_path / 'xy.safetensors'}")])
    assert torch.equal(named["y"], t + 1)


def test_unreadable_tensor_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a tensor file")
    with pytest.raises(TensorFileError, match="cannot read"):
        read_tensors(bad)
    with pytest.raises(TensorFileError, match="does not exist"):
        read_tensors(tmp_path / "missing.npy")
    with pytest.raises(TensorFileError, match="unknown suffix"):
        (tmp_path / "x.csv").write_text("1,2")
        read_tensors(tmp_path / "x.csv")
