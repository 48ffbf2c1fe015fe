"""Tiny randomly initialised encoders saved to a folder, for tests and examples.

They exercise the real ``from_pretrained`` loading path with no download. Nothing measured
on them is a finding: their weights are random.
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["SSL_FAMILIES", "save_tiny_ssl", "save_tiny_whisper", "save_tiny_w2v_bert"]

_CONV = dict(conv_dim=(32,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2))
_BODY = dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, vocab_size=32)

#: family name -> (config class, model class, CTC model class, extra config)
SSL_FAMILIES = {
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model", "Wav2Vec2ForCTC", {"feat_extract_norm": "group"}),
    "wav2vec2-large": ("Wav2Vec2Config", "Wav2Vec2Model", "Wav2Vec2ForCTC",
                       {"feat_extract_norm": "layer", "do_stable_layer_norm": True}),
    "hubert": ("HubertConfig", "HubertModel", "HubertForCTC", {"feat_extract_norm": "group"}),
    "wavlm": ("WavLMConfig", "WavLMModel", "WavLMForCTC", {"feat_extract_norm": "group"}),
    "data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioModel", "Data2VecAudioForCTC", {}),
}


def save_tiny_ssl(family: str, folder: str | Path, *, ctc: bool = False, seed: int = 0) -> Path:
    """Save a tiny random ``family`` model (optionally with a CTC head) and its feature
    extractor config to ``folder``; returns the folder."""
    import transformers

    cfg_name, model_name, ctc_name, extra = SSL_FAMILIES[family]
    torch.manual_seed(seed)
    cfg = getattr(transformers, cfg_name)(**_CONV, **_BODY, **extra)
    model = getattr(transformers, ctc_name if ctc else model_name)(cfg)
    folder = Path(folder)
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, do_normalize=True,
        return_attention_mask=extra.get("feat_extract_norm") != "group").save_pretrained(folder)
    return folder


def save_tiny_whisper(folder: str | Path, *, seed: int = 0, layers: int = 2) -> Path:
    """Save a tiny random Whisper model and its feature extractor to ``folder``."""
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.WhisperConfig(
        d_model=64, encoder_layers=layers, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80)
    folder = Path(folder)
    transformers.WhisperForConditionalGeneration(cfg).save_pretrained(folder)
    transformers.WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return folder


def save_tiny_w2v_bert(folder: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny random w2v-BERT 2.0 (Seamless-M4T v2 speech encoder) and its features."""
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.Wav2Vec2BertConfig(
        hidden_size=48, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
        conv_depthwise_kernel_size=5, feature_projection_input_dim=160, vocab_size=32)
    folder = Path(folder)
    transformers.Wav2Vec2BertModel(cfg).save_pretrained(folder)
    transformers.SeamlessM4TFeatureExtractor().save_pretrained(folder)
    return folder
