"""A BERT encoder from a tiny config with random weights (no download), for dynamic batch and sequence length.

The position table has 64 rows, so `seq` can be at most 64; `token_type_ids` is left to its default.
"""
import torch
import transformers

torch.manual_seed(0)
config = transformers.BertConfig(
    vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    max_position_embeddings=64,
)
model = transformers.BertModel(config).eval()
example_kwargs = {
    "input_ids": torch.randint(0, 120, (2, 8)),
    "attention_mask": torch.ones(2, 8, dtype=torch.int64),
}
dynamic = "input_ids:0=batch[1,16],input_ids:1=seq[2,64],attention_mask:0=batch,attention_mask:1=seq"
tags = {"dynamic-shape", "transformers", "encoder"}
