from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """A real store: tiny random wav2vec2 over the small synthetic corpus (not a finding)."""
    from probekit.corpus.synthetic import build_synthetic_corpus
    from probekit.encoders import load_encoder
    from probekit.store import extract
    from probekit.testing.tiny_models import save_tiny_ssl

    corpus = build_synthetic_corpus("small", tmp_path_factory.mktemp("pc") / "small", progress=False)
    enc = load_encoder(str(save_tiny_ssl("wav2vec2", tmp_path_factory.mktemp("pm") / "m")), device="cpu")
    return extract(enc, corpus, tmp_path_factory.mktemp("ps") / "s", poolings=("utterance", "phone"),
                   progress=False)


@pytest.fixture(scope="session")
def tiny_frames_store(tmp_path_factory):
    """A store with raw frames only (for the ASR task) and its corpus."""
    from probekit.corpus.synthetic import build_synthetic_corpus
    from probekit.encoders import load_encoder
    from probekit.store import extract
    from probekit.testing.tiny_models import save_tiny_ssl

    corpus = build_synthetic_corpus("small", tmp_path_factory.mktemp("fc") / "small", progress=False)
    enc = load_encoder(str(save_tiny_ssl("wav2vec2", tmp_path_factory.mktemp("fm") / "m")), device="cpu")
    store = extract(enc, corpus, tmp_path_factory.mktemp("fs") / "s", poolings=("utterance", "frames"),
                    progress=False)
    return store, corpus
