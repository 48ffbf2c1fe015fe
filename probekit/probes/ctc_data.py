"""``frames_by_utterance``: the name the CTC probe's frame sequences had before they moved to
:meth:`probekit.store.EmbeddingStore.read_sequences` (issue 22 item 9). Kept so that existing
code keeps working; new code calls the store.

Re-exported by :mod:`probekit.probes.ctc`.
"""

from __future__ import annotations

__all__ = ["frames_by_utterance"]


def frames_by_utterance(store, layer, corpus=None, check_corpus: bool = True):
    """``store.read_sequences(layer, corpus, check_corpus)``: see
    :meth:`probekit.store.EmbeddingStore.read_sequences` (the one implementation)."""
    return store.read_sequences(layer, corpus, check_corpus)
