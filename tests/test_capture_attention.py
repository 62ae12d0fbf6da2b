"""Attention traced without its kernel choice in the shape guards (pt2kit.capture.capture.export_module).

On CUDA before torch 2.12 the memory-efficient SDPA kernel's mask-alignment check, run on fake tensors
while tracing, turned a dynamic sequence into `8*_seq` (pytorch/pytorch#124502). pt2kit traces with
only the math backend enabled; these tests check that the program keeps the same attention op and
computes the same thing, and that torch's global backend flags are left as they were.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pt2kit.capture.capture import export_module


class MaskedAttention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(16, 48)

    def forward(self, x, mask):
        b, s, _ = x.shape
        q, k, v = self.proj(x).view(b, s, 3, 2, 8).permute(2, 0, 3, 1, 4)
        bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * -1e4
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(b, s, 16)


def _inputs(device="cpu", batch=2, seq=8):
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, seq, 16, generator=g).to(device), torch.ones(batch, seq, dtype=torch.int64, device=device)


def _dynamic():
    seq = torch.export.Dim("seq", min=2, max=64)
    return {"x": {1: seq}, "mask": {1: seq}}


def _ops(ep) -> set[str]:
    return {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}


def _flags():
    b = torch.backends.cuda
    return b.flash_sdp_enabled(), b.mem_efficient_sdp_enabled(), b.math_sdp_enabled(), b.cudnn_sdp_enabled()


def test_the_program_keeps_the_attention_op_and_is_the_one_plain_export_records():
    model = MaskedAttention().eval()
    ours = export_module(model, _inputs(), dynamic_shapes=_dynamic())
    plain = torch.export.export(model, _inputs(), dynamic_shapes=_dynamic())
    targets = {str(n.target) for n in ours.graph.nodes if n.op == "call_function"}
    assert "aten.scaled_dot_product_attention.default" in targets
    assert _ops(ours) == _ops(plain)
    x, mask = _inputs(seq=13)
    torch.testing.assert_close(ours.module()(x, mask), model(x, mask))


def test_a_transformers_encoder_records_the_same_graph():
    import transformers as tf

    config = tf.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    torch.manual_seed(0)
    model = tf.BertModel(config).eval()
    kwargs = {"input_ids": torch.randint(0, 99, (2, 8)), "attention_mask": torch.ones(2, 8, dtype=torch.int64)}
    seq = torch.export.Dim("seq", min=2, max=32)
    shapes = {"input_ids": {1: seq}, "attention_mask": {1: seq}}
    ours = export_module(model, (), kwargs, dynamic_shapes=shapes)
    plain = torch.export.export(model, (), kwargs, dynamic_shapes=shapes)
    # the math kernel's output layout differs, so a `.contiguous()` in the model's code is recorded
    # (a no-op at run time when the chosen kernel's output is already contiguous); nothing else changes
    assert _ops(ours) - {"aten.contiguous.default"} == _ops(plain)
    other = {"input_ids": torch.randint(0, 99, (2, 13)), "attention_mask": torch.ones(2, 13, dtype=torch.int64)}
    other["attention_mask"][0, 9:] = 0
    with torch.no_grad():
        torch.testing.assert_close(ours.module()(**other).last_hidden_state, model(**other).last_hidden_state)


def test_the_global_backend_flags_are_restored_even_when_export_fails():
    before = _flags()

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise ValueError("no")

    with pytest.raises(ValueError):
        export_module(Broken(), (torch.ones(2),))
    export_module(MaskedAttention(), _inputs())
    assert _flags() == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: the alignment guard comes from the CUDA kernel choice")
def test_a_dynamic_sequence_stays_dynamic_on_cuda():
    model = MaskedAttention().eval().cuda()
    ep = export_module(model, _inputs("cuda"), dynamic_shapes=_dynamic())
    for seq in (3, 13, 64):
        x, mask = _inputs("cuda", seq=seq)
        torch.testing.assert_close(ep.module()(x, mask), model(x, mask))
