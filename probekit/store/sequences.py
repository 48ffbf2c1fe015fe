"""The ``frames`` pooling as per-utterance frame sequences (:meth:`EmbeddingStore.read_sequences`).

Moved from ``probekit/probes/ctc_data.py`` (issue 22 item 9): cutting the stored frames into
utterances is reading the store, not probing; the CTC probe and the grid call the store.
"""

from __future__ import annotations

from collections.abc import Mapping

from probekit.errors import StoreError

__all__ = ["read_sequences"]


def read_sequences(store, layer, corpus=None, check_corpus: bool = True):
    """See :meth:`probekit.store.EmbeddingStore.read_sequences`."""
    from probekit.store.rows import FrameSequences

    rows, meta = store.rows(layer, "frames")
    meta = meta.sort_values("row", kind="stable").reset_index(drop=True)
    off, n = meta["offset"].to_numpy(), meta["n_frames"].to_numpy()
    bad = (off < 0) | (n < 0) | (off + n > rows.shape[0])
    if bad.any():
        i = int(bad.argmax())
        raise StoreError(f"utterance {meta['utt_id'].iloc[i]!r}: frames [{off[i]}, "
                         f"{off[i] + n[i]}) outside the stored {rows.shape[0]} frames of layer "
                         f"{layer!r}")
    seqs = FrameSequences(rows, off, n, meta["utt_id"].to_numpy())
    if corpus is None:
        return seqs, meta
    if isinstance(corpus, Mapping):
        lookup = {k: str(v) for k, v in corpus.items()}
        phones = None
    else:
        if check_corpus:
            from probekit.store.store import corpus_hash

            fp = store.fingerprint.get("corpus")
            if fp is not None and corpus_hash(corpus) != fp:
                raise StoreError(f"corpus {getattr(corpus, 'name', corpus)!r} is not the one "
                                 f"store {store.root} was extracted from (manifest hash "
                                 f"differs); pass check_corpus=False to match by utt_id")
        by_id = {u.id: u for u in corpus}
        lookup = {k: u.text for k, u in by_id.items()}
        phones = {k: tuple(p.symbol for p in u.phones) for k, u in by_id.items()}
    missing = [u for u in meta["utt_id"] if u not in lookup]
    if missing:
        raise StoreError(f"{len(missing)} stored utterance(s) not in the corpus, e.g. "
                         f"{missing[0]!r}")
    meta["text"] = [lookup[u] for u in meta["utt_id"]]
    if phones is not None and any(phones[u] for u in meta["utt_id"]):
        meta["phones"] = [phones[u] for u in meta["utt_id"]]
    return seqs, meta
