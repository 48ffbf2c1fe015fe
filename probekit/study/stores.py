"""A study's embedding store per encoder: extracted into the study folder, or an existing one
named by ``[[encoders]] store = "..."`` after checking that it is this encoder's store of this
corpus (issue 18 item 7)."""

from __future__ import annotations

from pathlib import Path

from probekit.errors import ProbekitError

__all__ = ["study_store", "check_reused_store"]


def check_reused_store(store, encoder, corpus, poolings, layers=None) -> None:
    """Refuse (:class:`ProbekitError` naming the store and the difference) a store that was
    not computed by ``encoder``'s weights from ``corpus``, or lacks a pooling or layer."""
    from probekit.store.store import corpus_hash

    fp = store.fingerprint
    where = f"store {store.root} (encoder {fp.get('encoder')!r})"
    if fp.get("encoder_weights") != encoder.fingerprint:
        raise ProbekitError(f"{where} was not computed by encoder {encoder.name!r} (weights "
                            "fingerprint differs); remove 'store' to extract one")
    if fp.get("corpus") != corpus_hash(corpus):
        raise ProbekitError(f"{where} was computed from another corpus than the study's "
                            f"({fp.get('utterances')} utterances there, {len(corpus)} here)")
    missing = sorted(set(poolings) - set(store.poolings))
    if missing:
        raise ProbekitError(f"{where} lacks pooling(s) {missing} that the study's tasks need "
                            f"(it has {store.poolings})")
    if layers:
        names = {encoder.layer_names[i] if isinstance(i, int) else str(i) for i in layers}
        absent = sorted(names - set(store.layers))
        if absent:
            raise ProbekitError(f"{where} lacks layer(s) {absent}")


def study_store(spec, enc, corpus, folder: Path, poolings, progress: bool = True):
    """``spec.store`` checked and opened, else a store extracted (or resumed) in ``folder``."""
    from probekit.store import extract
    from probekit.store.store import EmbeddingStore

    if spec.store:
        store = EmbeddingStore.open(spec.store)
        check_reused_store(store, enc, corpus, poolings, spec.layers)
        return store
    return extract(enc, corpus, folder, layers=list(spec.layers) if spec.layers else None,
                   poolings=poolings, progress=progress)
