"""Fixtures: a tiny random Whisper with the real tiny.en tokenizer, and a tiny corpus."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory, _isolated_cache):
    """A random 2-layer Whisper (d_model 64) saved with whisper-tiny.en's tokenizer and
    generation config, so the training and evaluation code paths run on it unchanged."""
    from probekit.encoders.weights import resolve_whisper
    from probekit.testing.tiny_models import save_tiny_whisper

    folder = save_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper"), seed=0)
    real = resolve_whisper("whisper-tiny.en", sources=("local", "hf-cache", "package"))
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if (real / name).exists():
            shutil.copy(real / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def small_corpus(_isolated_cache):
    from probekit.corpus.synthetic import build_synthetic_corpus

    return build_synthetic_corpus("small", progress=False)
