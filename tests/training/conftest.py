"""Fixtures: a tiny random Whisper with the real tiny.en tokenizer, and a tiny corpus."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory, _isolated_cache):
    """A random 2-layer Whisper (d_model 64) saved with whisper-tiny.en's tokenizer and
    generation config, so the training and evaluation code paths run on it unchanged.

    Unlike :func:`probekit.testing.tiny_models.save_tiny_whisper` its window is 4 s, not 30 s
    (``max_source_positions=200``, feature extractor ``chunk_length=4``): attention over 200
    instead of 1500 frames makes the training tests ~10x faster. Longer utterances are cut
    at 4 s, which does not matter for a random model.
    """
    import torch
    import transformers

    from probekit.encoders.weights import resolve_whisper

    folder = tmp_path_factory.mktemp("tiny-whisper")
    torch.manual_seed(0)
    cfg = transformers.WhisperConfig(
        d_model=64, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=80,
        max_source_positions=200, vocab_size=51864, decoder_start_token_id=50257,
        pad_token_id=50256, bos_token_id=50256, eos_token_id=50256)
    transformers.WhisperForConditionalGeneration(cfg).save_pretrained(folder)
    transformers.WhisperFeatureExtractor(feature_size=80, chunk_length=4).save_pretrained(folder)
    real = resolve_whisper("whisper-tiny.en", sources=("local", "hf-cache", "package"))
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if (real / name).exists():
            shutil.copy(real / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def small_corpus(_isolated_cache):
    from probekit.corpus.synthetic import build_synthetic_corpus

    return build_synthetic_corpus("small", progress=False)
