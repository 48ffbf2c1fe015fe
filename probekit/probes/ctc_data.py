"""The store's ``frames`` pooling as per-utterance frame sequences for the CTC probe.

- :func:`frames_by_utterance`: per-utterance (frames, hidden) views of one layer, with the
  transcripts (and phones) of the corpus the store was extracted from.

Re-exported by :mod:`probekit.probes.ctc`.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["frames_by_utterance"]


def frames_by_utterance(store, layer, corpus=None, check_corpus: bool = True):
    """Per-utterance frame sequences of one layer, from the store's ``frames`` pooling.

    The store's metadata has no transcripts (``utt_id``, ``speaker``, ``sentence_id`` and
    group columns only), so texts come from ``corpus`` by ``utt_id``.

    Parameters
    ----------
    store : EmbeddingStore
    layer : int or str
    corpus : Corpus or Mapping[str, str], optional
        The corpus the store was extracted from (its manifest): adds ``text`` and, when the
        utterances have phone alignments, ``phones`` (tuple of symbols) to ``meta``. A plain
        mapping ``utt_id -> text`` adds ``text`` only.
    check_corpus : bool, default True
        For a Corpus, refuse one whose manifest hash differs from the store's fingerprint.

    Returns
    -------
    sequences : list of numpy.ndarray, each (n_frames_i, hidden_size)
        Views into the (memory-mapped) stored array, stored dtype, in utterance (corpus) order.
    meta : pandas.DataFrame, one row per utterance
        The ``frames.csv`` rows (``utt_id``, ``speaker``, groups, ``offset``, ``n_frames``...).

    Raises
    ------
    StoreError
        The store lacks the ``frames`` pooling, its offsets do not fit the array, the corpus is
        not the store's, or an utterance id is missing from ``corpus``.
    """
    from probekit.errors import StoreError

    X, meta = store.read(layer, "frames")
    meta = meta.sort_values("row", kind="stable").reset_index(drop=True)
    seqs = []
    for uid, off, n in zip(meta["utt_id"], meta["offset"], meta["n_frames"]):
        if off < 0 or n < 0 or off + n > X.shape[0]:
            raise StoreError(f"utterance {uid!r}: frames [{off}, {off + n}) outside the stored "
                             f"{X.shape[0]} frames of layer {layer!r}")
        seqs.append(X[off:off + n])
    if corpus is not None:
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

