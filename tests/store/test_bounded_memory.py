"""Issue 23 item 2: no code path materialises a whole layer.

``EmbeddingStore.rows`` reads a layer in pieces across shards (the same rows as ``read``);
``read_sequences`` is lazy; the CTC probe streams batches of utterances from the shard files,
so a CTC probe grid's peak memory does not grow with the store (traced with ``tracemalloc``,
which counts numpy's allocations; ``benchmarks/ctc_memory.py`` measures the process's RSS)."""

from __future__ import annotations

import logging
import tracemalloc

import numpy as np
import pytest

from probekit.errors import StoreError
from probekit.probes.ctc import CTCProbe
from probekit.probes.grid import run_grid
from probekit.store.rows import FrameSequences
from probekit.testing.synthetic_store import write_frames_store


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return write_frames_store(tmp_path_factory.mktemp("fr") / "s", n_utterances=40, hidden=16,
                              n_layers=2, shard_size=7, dtype="float16")


def test_rows_read_the_same_rows_as_read_across_shards(frames):
    store, _ = frames
    X, meta = store.read("block1", "frames")
    rows, meta2 = store.rows("block1", "frames")
    assert len(store.index["shards"]) == 6 and meta.equals(meta2)
    assert rows.shape == X.shape and rows.dtype == X.dtype and rows.nbytes == X.nbytes
    np.testing.assert_array_equal(rows.block(0, len(rows)), X)
    a, b = int(meta["offset"].iloc[1]) + 3, int(meta["offset"].iloc[4]) + 1  # crosses a shard
    np.testing.assert_array_equal(rows.block(a, b), X[a:b])
    idx = np.array([b, 5, a, 5, len(X) - 1, 0])  # any order, repeats
    np.testing.assert_array_equal(rows.take(idx), X[idx])
    dense = np.arange(len(X) - 1, 0, -3)  # 1 in 3 rows: read as spans, then selected
    np.testing.assert_array_equal(rows.take(dense), X[dense])
    got = list(rows.chunks(100))
    np.testing.assert_array_equal(np.concatenate([i for i, _ in got]), np.arange(len(X)))
    np.testing.assert_array_equal(np.concatenate([c for _, c in got]), X)
    assert max(len(c) for _, c in got) == 100 and not rows.block(3, 4).flags.writeable
    for bad in (lambda: rows.block(0, len(X) + 1), lambda: rows.take([len(X)]),
                lambda: rows.take([-1]), lambda: list(rows.chunks(0))):
        with pytest.raises(StoreError):
            bad()


def test_read_sequences_is_lazy_and_reads_one_utterance_at_a_time(frames, monkeypatch):
    from probekit.store.rows import LayerRows

    store, texts = frames
    X, _ = store.read("block0", "frames")
    reads = []
    read_into = LayerRows._read_into
    monkeypatch.setattr(LayerRows, "_read_into",
                        lambda self, out, a, b: (reads.append(b - a), read_into(self, out, a, b)))
    seqs, meta = store.read_sequences("block0", texts)
    assert reads == []  # nothing read yet
    for s in seqs:
        assert type(s) is np.ndarray
    assert max(reads) <= meta["n_frames"].max()  # never more than one utterance per read
    assert isinstance(seqs, FrameSequences) and len(seqs) == 40
    np.testing.assert_array_equal(np.concatenate(list(seqs)), X)
    sub = seqs[[3, 1]]
    assert isinstance(sub, FrameSequences)
    np.testing.assert_array_equal(sub[1], seqs[1])
    np.testing.assert_array_equal(seqs[-1], seqs[len(seqs) - 1])
    assert [len(s) for s in seqs[2:5]] == list(meta["n_frames"][2:5])


def test_ctc_probe_on_lazy_sequences_equals_the_probe_on_arrays(frames):
    store, texts = frames
    seqs, meta = store.read_sequences("block0", texts)
    kw = dict(max_epochs=2, random_state=0, batch_size=8)
    lazy = CTCProbe(**kw).fit(seqs[:30], list(meta["text"][:30]))
    eager = CTCProbe(**kw).fit([np.array(s) for s in seqs[:30]], list(meta["text"][:30]))
    for a, b in zip(lazy.model_.state_dict().values(), eager.model_.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert lazy.predict(seqs[30:]) == eager.predict([np.array(s) for s in seqs[30:]])


def _grid_peak(tmp_path, n):
    """tracemalloc peak of a one-epoch CTC grid on a store of ``n`` utterances (8 shards+)."""
    store, texts = write_frames_store(tmp_path / f"s{n}", n_utterances=n, hidden=256,
                                      frames_per_char=4, shard_size=16, dtype="float32")
    tracemalloc.start()
    run_grid(store, "asr", tmp_path / f"r{n}", corpus=texts, seeds=(0,), max_epochs=1,
             progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, store.index["rows"]["frames"] * store.index["hidden_size"] * 4  # float32


def test_ctc_grid_peak_memory_does_not_grow_with_the_store(tmp_path):
    logging.disable(logging.WARNING)
    try:
        _grid_peak(tmp_path, 24)  # imports and first-call caches, outside the measure
        small, small_bytes = _grid_peak(tmp_path, 128)
        big, big_bytes = _grid_peak(tmp_path, 512)
    finally:
        logging.disable(logging.NOTSET)
    assert big_bytes > 3.5 * small_bytes
    assert big < big_bytes / 2  # the 4x store's frames are never held at once
    assert big <= 1.25 * small, (small, big)


def test_speaker_dispersion_streams_a_layer_and_equals_the_whole_array(monkeypatch):
    """The analysis's dispersion table reads a layer in blocks: one block gives the same
    bytes as the array; many blocks agree to 1e-12, and the peak holds no copy of the layer."""
    from probekit.bias import dispersion
    from probekit.store.rows import ArrayRows
    from probekit.testing.simulate import simulate_embeddings

    X, y, meta = simulate_embeddings(n_groups=2, speakers_per_group=6, n_phones=8, dim=64,
                                     tokens_per_phone=60, dispersion_inflation={"g1": 1.4})
    whole = dispersion.speaker_dispersion(X, y, meta)
    pd_testing = __import__("pandas").testing
    pd_testing.assert_frame_equal(dispersion.speaker_dispersion(ArrayRows(X), y, meta), whole)
    monkeypatch.setattr(dispersion, "CHUNK_BYTES", 8 * 64 * 97)  # blocks of 97 tokens
    rows = ArrayRows(X)
    tracemalloc.start()
    blocks = dispersion.speaker_dispersion(rows, y, meta)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    pd_testing.assert_frame_equal(blocks, whole, check_exact=False, rtol=1e-12, atol=1e-12)
    assert peak < X.astype(np.float64).nbytes / 2, peak  # the old path held several copies
    for name in ("shrinkage", "ledoit_wolf"):
        kw = {"shrinkage": 0.3 if name == "shrinkage" else "ledoit_wolf"}
        pd_testing.assert_frame_equal(dispersion.speaker_dispersion(rows, y, meta, **kw),
                                      dispersion.speaker_dispersion(X, y, meta, **kw),
                                      check_exact=False, rtol=1e-12, atol=1e-12)
