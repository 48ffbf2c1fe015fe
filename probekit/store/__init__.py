"""Extraction and the on-disk embedding store (see docs/store.md).

``extract(encoder, corpus, out_dir)`` writes every layer's hidden states pooled per utterance,
per aligned phone and/or as raw frames; ``EmbeddingStore.open(out_dir)`` reads them back
memory-mapped, one layer at a time, or in pieces (``EmbeddingStore.rows``: bounded memory).
"""

from probekit.store.extract import extract, extract_shards, resolve_layers, store_fingerprint
from probekit.store.pooling import phone_frame_ranges, phone_means, utterance_mean
from probekit.store.store import POOLINGS, EmbeddingStore, corpus_hash

__all__ = ["extract", "extract_shards", "EmbeddingStore", "POOLINGS", "resolve_layers", "store_fingerprint",
           "corpus_hash", "utterance_mean", "phone_frame_ranges", "phone_means"]
