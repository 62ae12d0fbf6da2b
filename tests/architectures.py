"""Real transformers architectures, built small: the survey set pt2kit is tested on.

Every entry is a real transformers model class built from a tiny config (hidden size 32-64, one or
two layers, small vocabularies) with random weights: nothing is downloaded, no `from_pretrained`.
Decoders run with `use_cache=True`, so their outputs carry the cache object (`DynamicCache`,
`EncoderDecoderCache`) that plain `torch.export` cannot return without pt2kit's pytree registration.

This file follows the `SURVEY` convention of `pt2kit survey` (docs/survey.md): each entry names a
zero-argument factory, its example inputs and its dynamic dims. Run it with

    pt2kit survey tests/architectures.py --stages export,verify --shapes static,dynamic
"""

from __future__ import annotations

import torch
import transformers as tf

BATCH, SEQ, VOCAB = 2, 8, 99


def _ids(batch: int = BATCH, seq: int = SEQ, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))


def _text_inputs() -> dict:
    return {"input_ids": _ids(), "attention_mask": torch.ones(BATCH, SEQ, dtype=torch.int64)}


def _seeded(build):
    """A factory that builds the model with fixed random weights, in eval mode."""

    def factory():
        torch.manual_seed(0)
        return build().eval()

    factory.__name__ = getattr(build, "__name__", "factory")
    return factory


_TEXT_DYNAMIC = "input_ids:0=batch[1,16],input_ids:1=seq[2,32],attention_mask:0=batch,attention_mask:1=seq"
_SMALL = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def _encoder(config_cls, model_cls=tf.AutoModel, **overrides) -> dict:
    config = {**_SMALL, "max_position_embeddings": 64, **overrides}
    return {
        "model": _seeded(lambda: model_cls.from_config(config_cls(**config))),
        "kwargs": _text_inputs(), "dynamic": _TEXT_DYNAMIC, "family": "encoder",
    }


def _decoder(config_cls, **overrides) -> dict:
    config = {**_SMALL, "max_position_embeddings": 64, "use_cache": True, **overrides}
    return {
        "model": _seeded(lambda: tf.AutoModelForCausalLM.from_config(config_cls(**config))),
        "kwargs": _text_inputs(), "dynamic": _TEXT_DYNAMIC, "family": "decoder",
    }


def _llama_like(config_cls, **overrides) -> dict:
    return _decoder(config_cls, num_key_value_heads=1, head_dim=16, **overrides)


def _seq2seq(model_factory, **extra_inputs) -> dict:
    kwargs = dict(_text_inputs(), decoder_input_ids=_ids(BATCH, 4, seed=1), **extra_inputs)
    return {
        "model": _seeded(model_factory), "kwargs": kwargs, "family": "encoder-decoder",
        "dynamic": _TEXT_DYNAMIC + ",decoder_input_ids:0=batch,decoder_input_ids:1=target[2,16]",
    }


def _vision(config, model_cls=tf.AutoModelForImageClassification, size: int = 32) -> dict:
    pixels = torch.randn(BATCH, 3, size, size, generator=torch.Generator().manual_seed(0))
    return {
        "model": _seeded(lambda: model_cls.from_config(config)), "kwargs": {"pixel_values": pixels},
        "dynamic": "pixel_values:0=batch[1,16]", "family": "vision",
    }


def _whisper() -> dict:
    config = tf.WhisperConfig(
        vocab_size=VOCAB, num_mel_bins=8, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        max_source_positions=16, max_target_positions=32, use_cache=True,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )
    features = torch.randn(BATCH, 8, 32, generator=torch.Generator().manual_seed(0))  # 2 * max_source_positions frames
    return {
        "model": _seeded(lambda: tf.WhisperForConditionalGeneration(config)),
        "kwargs": {"input_features": features, "decoder_input_ids": _ids(BATCH, 4, seed=1)},
        "dynamic": "input_features:0=batch[1,16],decoder_input_ids:0=batch,decoder_input_ids:1=target[2,16]",
        "family": "audio",
    }


def _wav2vec2() -> dict:
    config = tf.Wav2Vec2Config(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, do_stable_layer_norm=True, feat_extract_norm="layer",
    )
    audio = torch.randn(BATCH, 800, generator=torch.Generator().manual_seed(0))
    return {
        "model": _seeded(lambda: tf.Wav2Vec2ForCTC(config)), "kwargs": {"input_values": audio},
        "dynamic": "input_values:0=batch[1,16],input_values:1=samples[400,4000]", "family": "audio",
    }


SURVEY = {
    # encoders
    "bert": _encoder(tf.BertConfig),
    "roberta": _encoder(tf.RobertaConfig, pad_token_id=1, max_position_embeddings=80),
    "distilbert": _encoder(tf.DistilBertConfig, dim=32, n_layers=2, n_heads=2, hidden_dim=64),
    "albert": _encoder(tf.AlbertConfig, embedding_size=16),
    "electra": _encoder(tf.ElectraConfig, embedding_size=16),
    "deberta-v2": _encoder(tf.DebertaV2Config, max_relative_positions=16, position_buckets=8),
    # seq from 3: MobileBERT's trigram input embedding guards `seq - 1 != 1` (docs/architectures.md)
    "mobilebert": dict(_encoder(tf.MobileBertConfig, embedding_size=16, intra_bottleneck_size=32, true_hidden_size=32,
                                num_feedforward_networks=1), dynamic=_TEXT_DYNAMIC.replace("seq[2,32]", "seq[3,32]")),
    # decoders (use_cache=True: the output carries the cache)
    "gpt2": _decoder(tf.GPT2Config, n_embd=32, n_layer=2, n_head=2, n_positions=64, bos_token_id=1, eos_token_id=2),
    "llama": _llama_like(tf.LlamaConfig),
    "mistral": _llama_like(tf.MistralConfig, sliding_window=16),
    "qwen2": _llama_like(tf.Qwen2Config),
    "qwen3": _llama_like(tf.Qwen3Config),
    "gemma": _llama_like(tf.GemmaConfig),
    "phi": _decoder(tf.PhiConfig),
    "opt": _decoder(tf.OPTConfig, ffn_dim=64, word_embed_proj_dim=32),
    "bloom": _decoder(tf.BloomConfig, n_layer=2, n_head=2),
    "gpt-neo": _decoder(tf.GPTNeoConfig, num_layers=2, num_heads=2, attention_types=[[["global", "local"], 1]],
                        window_size=16),
    # encoder-decoders
    "t5": _seq2seq(lambda: tf.T5ForConditionalGeneration(tf.T5Config(
        vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2,
        decoder_start_token_id=0, use_cache=True))),
    "bart": _seq2seq(lambda: tf.BartForConditionalGeneration(tf.BartConfig(
        vocab_size=VOCAB, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64, use_cache=True))),
    # vision
    "vit": _vision(tf.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                image_size=32, patch_size=8, num_labels=10)),
    "resnet": _vision(tf.ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], num_labels=10)),
    "convnext": _vision(tf.ConvNextConfig(num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], num_labels=10)),
    "swin": _vision(tf.SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                                  window_size=4, num_labels=10)),
    # audio
    "whisper": _whisper(),
    "wav2vec2": _wav2vec2(),
}


def gpt2_factory():
    """GPT-2 alone, as a `TARGET`: `pt2kit export tests/architectures.py:gpt2_factory --input ...`."""
    return SURVEY["gpt2"]["model"]()
