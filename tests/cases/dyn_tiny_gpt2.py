"""A GPT-2 decoder from a tiny config with random weights (no download), for dynamic batch and sequence length.

`use_cache=False` through a wrapper: with the cache, forward also returns a `DynamicCache`, which is
another pt2kit stage's concern (pytree registration); here only the logits matter.
"""
import torch
import transformers
from torch import nn

torch.manual_seed(0)
config = transformers.GPT2Config(vocab_size=120, n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=0, eos_token_id=0)


class Logits(nn.Module):
    """GPT-2's logits, without the key/value cache."""

    def __init__(self):
        super().__init__()
        self.gpt2 = transformers.GPT2LMHeadModel(config).eval()

    def forward(self, input_ids, attention_mask):
        return self.gpt2(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


model = Logits().eval()
example_kwargs = {
    "input_ids": torch.randint(0, 120, (2, 8)),
    "attention_mask": torch.ones(2, 8, dtype=torch.int64),
}
dynamic = "input_ids:0=batch[1,16],input_ids:1=seq[2,64],attention_mask:0=batch,attention_mask:1=seq"
tags = {"dynamic-shape", "transformers", "decoder"}
