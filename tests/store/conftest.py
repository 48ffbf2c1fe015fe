"""Shared fixtures: the small synthetic corpus and a tiny random wav2vec2, built once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    from probekit.corpus.synthetic import build_synthetic_corpus

    return build_synthetic_corpus("small", tmp_path_factory.mktemp("store-corpus") / "small",
                                  progress=False)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from probekit.testing.tiny_models import save_tiny_ssl

    return save_tiny_ssl("wav2vec2", tmp_path_factory.mktemp("store-model") / "w2v2")


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir):
    from probekit.encoders import load_encoder

    return load_encoder(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="session")
def store32(tiny_encoder, small_corpus, tmp_path_factory):
    """Every layer and pooling in float32, one utterance per batch (bit-comparable)."""
    from probekit.store import extract

    return extract(tiny_encoder, small_corpus, tmp_path_factory.mktemp("store32") / "s",
                   poolings=("utterance", "phone", "frames"), dtype="float32", shard_size=4,
                   batch_size=1, progress=False)


@pytest.fixture(scope="session")
def store16(tiny_encoder, small_corpus, tmp_path_factory):
    """The default float16 store, batched."""
    from probekit.store import extract

    return extract(tiny_encoder, small_corpus, tmp_path_factory.mktemp("store16") / "s",
                   shard_size=5, batch_size=4, progress=False)
