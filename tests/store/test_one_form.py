"""Issue 22 item 4: a store read and an extraction return one form whatever the input's form.

``EmbeddingStore.read`` gives a plain read-only ndarray for a store of one shard or many;
``extract`` always returns the store, and the multi-rank path without a process group is its
own function (``extract_shards``) returning the shard folders it wrote."""

from __future__ import annotations

import numpy as np
import pytest

from probekit.errors import StoreError
from probekit.store import EmbeddingStore, extract, extract_shards


@pytest.fixture(scope="module")
def one_shard(tiny_encoder, small_corpus, tmp_path_factory):
    return extract(tiny_encoder, small_corpus[:4], tmp_path_factory.mktemp("one") / "s",
                   poolings=("utterance", "frames"), dtype="float32", shard_size=64,
                   batch_size=1, progress=False)


@pytest.mark.parametrize("pooling", ["utterance", "frames"])
def test_read_is_a_plain_readonly_ndarray_for_one_shard_or_many(one_shard, store32, pooling):
    assert len(one_shard.index["shards"]) == 1 and len(store32.index["shards"]) > 1
    X1, _ = one_shard.read(1, pooling)
    Xn, _ = store32.read(1, pooling)
    for X in (X1, Xn):
        assert type(X) is np.ndarray  # not an np.memmap for one shard
        assert not X.flags.writeable  # nor writable for several
        assert X.dtype == np.float32
    # the same utterances give the same rows either way (store32 has the first 4 too)
    n = X1.shape[0]
    np.testing.assert_array_equal(X1, Xn[:n])


def test_read_sequences_cuts_the_frames_per_utterance(store32, small_corpus):
    seqs, meta = store32.read_sequences("block1", small_corpus)
    X, _ = store32.read("block1", "frames")
    assert list(meta["utt_id"]) == [u.id for u in small_corpus]
    assert list(meta["text"]) == [u.text for u in small_corpus]
    assert [len(s) for s in seqs] == list(meta["n_frames"])
    assert all(type(s) is np.ndarray for s in seqs)
    np.testing.assert_array_equal(np.concatenate(seqs), X)


def test_extract_refuses_several_ranks_without_a_process_group(tiny_encoder, small_corpus,
                                                                tmp_path):
    with pytest.raises(StoreError, match="extract_shards"):
        extract(tiny_encoder, small_corpus, tmp_path / "s", rank=0, world_size=2,
                progress=False)


def test_extract_shards_returns_what_it_wrote_and_the_last_rank_finishes(
        tiny_encoder, small_corpus, store32, tmp_path):
    out = tmp_path / "s"
    kw = dict(poolings=("utterance", "phone", "frames"), dtype="float32", shard_size=4,
              batch_size=1, world_size=2, progress=False)
    n_shards = len(store32.index["shards"])
    first = extract_shards(tiny_encoder, small_corpus, out, rank=0, **kw)
    assert [p.name for p in first] == [f"{i:05d}" for i in range(0, n_shards, 2)]
    assert all(p.is_dir() for p in first) and not (out / "store.json").exists()
    second = extract_shards(tiny_encoder, small_corpus, out, rank=1, **kw)
    assert [p.name for p in second] == [f"{i:05d}" for i in range(1, n_shards, 2)]
    assert extract_shards(tiny_encoder, small_corpus, out, rank=1, **kw) == []  # nothing to do
    store = EmbeddingStore.open(out)  # the rank that found every shard wrote the index
    np.testing.assert_array_equal(store.read(2, "phone")[0], store32.read(2, "phone")[0])
    again = extract(tiny_encoder, small_corpus, out, **{**kw, "world_size": None})
    assert isinstance(again, EmbeddingStore) and again.index == store.index


def test_cli_ranks_without_a_rendezvous_write_their_shards(tiny_model_dir, small_corpus,
                                                            tmp_path, monkeypatch, capsys):
    """RANK/WORLD_SIZE without MASTER_ADDR (independent jobs): each rank writes its shards
    and says how many; the last one finishes the store."""
    from probekit.cli import main

    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "s"
    args = ["extract", "--encoder", str(tiny_model_dir), "--corpus", str(small_corpus.root),
            "--out", str(out), "--shard-size", "4", "--pooling", "utterance", "--no-progress"]
    n_shards = -(-len(small_corpus) // 4)
    monkeypatch.setenv("RANK", "0")
    assert main(args) == 0
    first = capsys.readouterr().out
    assert f"rank 0/2: wrote {len(range(0, n_shards, 2))} shard(s)" in first
    assert "when every rank has finished" in first and not (out / "store.json").exists()
    monkeypatch.setenv("RANK", "1")
    assert main(args) == 0
    assert "the store is finished" in capsys.readouterr().out
    assert EmbeddingStore.open(out).index["rows"]["utterance"] == len(small_corpus)
