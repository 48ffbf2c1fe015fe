"""The closed-form grid from shared statistics equals direct per-cell fits on the same rows."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from probekit.probes.grid import make_probe, run_grid
from probekit.probes.grid_scoring import stream_errors
from probekit.probes.grid_stats import set_statistics
from probekit.probes.lda import LDAProbe
from probekit.probes.linear import LinearProbe
from probekit.probes.results import ResultsTable
from probekit.probes.splits import content_split, equal_training_sets, speaker_ranks

from tests.probes.test_grid import FakeStore, _meta

KINDS = ("single", "all", "all-matched", "all-but")


def _uneven_meta():
    """Sentences repeat (sentence-disjoint splits) and speakers hold unequal row counts."""
    meta = _meta(speakers=5, sentences=6)
    drop = meta.index[(meta["speaker"] == "g2_s1") & (meta["sentence_id"] != "S0")][:30]
    return meta.drop(drop).reset_index(drop=True).assign(row=lambda d: np.arange(len(d)))


@pytest.mark.parametrize("probe", ["lda", "ridge"])
@pytest.mark.parametrize("direct", [False, True], ids=["segments", "per-set"])
def test_shared_statistics_equal_direct_fits_on_the_same_rows(probe, direct, monkeypatch):
    """Both ways of summing (shared segments and the membership product, or each set's own
    rows where that costs less) give every set the statistics of a direct fit."""
    from probekit.probes import grid_stats

    monkeypatch.setattr(grid_stats, "_direct_is_cheaper", lambda walks, sets: direct)
    monkeypatch.setattr(grid_stats, "UNION_BLOCKS", 1)  # several union groups per seed
    meta = _uneven_meta()
    store = FakeStore(meta, layers=("conv",))
    X, y = store.X["conv"], meta["phone"].to_numpy()
    splits = {s: content_split(meta, "group:accent", s) for s in range(3)}
    sets = {s: equal_training_sets(meta, splits[s].train, "group:accent", s, KINDS) for s in splits}
    wanted = {(s, ts.name): (s, ts) for s in sets for ts in sets[s]}
    stats = set_statistics(X, y, meta, {s: sp.train for s, sp in splits.items()}, wanted, block=7)
    tests = {s: sp.test for s, sp in splits.items()}
    models = {k: (s, make_probe(probe, s).fit_from_stats(stats[k])) for k, (s, _) in wanted.items()}
    wrong = stream_errors(X, y, tests, models, block=11)
    for (s, name), (_, ts) in wanted.items():
        direct = make_probe(probe, s).fit(X[ts.rows], y[ts.rows])
        shared = models[(s, name)][1]
        assert stats[(s, name)].n == len(ts.rows)
        np.testing.assert_array_equal(shared.classes_, direct.classes_)
        np.testing.assert_allclose(shared.coef_, direct.coef_, rtol=0, atol=1e-8)
        np.testing.assert_allclose(shared.intercept_, direct.intercept_, rtol=0, atol=1e-8)
        pred = direct.predict(X[tests[s]])
        np.testing.assert_array_equal(wrong[(s, name)], pred != y[tests[s]])


def test_training_sets_are_per_speaker_prefixes_of_one_fixed_order():
    meta = _uneven_meta()
    rank = speaker_ranks(meta)
    for s in range(3):
        sp = content_split(meta, "group:accent", s)
        sets = equal_training_sets(meta, sp.train, "group:accent", s, KINDS)
        assert len({len(ts.rows) for ts in sets}) == 1  # exactly equal sizes
        for ts in sets:
            assert sum(ts.quotas.values()) == len(ts.rows) and ts.n_speakers == len(ts.quotas)
            for spk, q in ts.quotas.items():
                mine = sp.train[meta["speaker"].to_numpy()[sp.train] == spk]
                first = np.sort(mine[np.argsort(rank[mine])][:q])
                np.testing.assert_array_equal(np.intersect1d(ts.rows, mine), first)
    # the order is the speaker's own: the same whatever other rows the table holds
    sub = meta[meta["group:accent"] == "g1"].reset_index(drop=True)
    full = pd.Series(rank, index=meta.index)[meta["group:accent"] == "g1"].to_numpy()
    np.testing.assert_array_equal(speaker_ranks(sub), full)


def test_grid_rows_equal_the_per_cell_path(tmp_path):
    meta = _uneven_meta()
    store = FakeStore(meta)
    kw = dict(seeds=(0, 1), train_sets=KINDS, progress=False)
    shared = run_grid(store, "phone", tmp_path / "a", probes=("lda",), **kw)
    per_cell = run_grid(store, "phone", tmp_path / "b", probes=(LDAProbe(),), **kw)
    keys = ["layer", "train_set", "seed", "test_group", "unit", "metric"]
    a = shared.sort_values(keys).reset_index(drop=True)
    b = per_cell.sort_values(keys).reset_index(drop=True)
    assert len(a) == len(b) > 0 and set(a["probe"]) == {"lda"}
    pd.testing.assert_frame_equal(a.drop(columns="probe"), b.drop(columns="probe"))
    assert set(a["draw"]) == {"2"}
    ridge = run_grid(store, "phone", tmp_path / "c", probes=("ridge",), **kw)
    ridge_cell = run_grid(store, "phone", tmp_path / "d", probes=(LinearProbe(alpha=30.0),), **kw)
    np.testing.assert_array_equal(ridge.sort_values(keys)["value"].to_numpy(),
                                  ridge_cell.sort_values(keys)["value"].to_numpy())


def test_cells_of_an_older_draw_are_retired_by_name(tmp_path, caplog):
    meta = _uneven_meta()
    store = FakeStore(meta, layers=("conv",))
    first = run_grid(store, "phone", tmp_path, seeds=(0,), progress=False)
    table = ResultsTable(tmp_path)
    old = table.parts()[0]
    # the same cells as an older probekit wrote them: no draw column
    pd.read_csv(old).drop(columns="draw").to_csv(old, index=False)
    with caplog.at_level(logging.WARNING):
        again = run_grid(store, "phone", tmp_path, seeds=(0,), progress=False)
    assert old.name in caplog.text and "another training-set draw" in caplog.text
    assert (tmp_path / "superseded" / old.name).exists()
    assert len(again) == len(first) and set(table.load()["draw"]) == {"2"}


def test_error_rows_are_the_per_speaker_and_per_group_means():
    from probekit.probes.grid_rows import TestUnits

    rng = np.random.default_rng(0)
    meta = pd.DataFrame({"speaker": rng.choice(["s1", "s10", "s2", "a b", "Z"], 400),
                         "group:accent": rng.choice(["es", "en", "zh_x"], 400)})
    test = np.sort(rng.choice(400, 250, replace=False))
    wrong = rng.random(250) < 0.3
    rows = pd.DataFrame(TestUnits(meta, test, "group:accent").rows(wrong, {"seed": 0}))
    frame = meta.iloc[test].assign(wrong=wrong.astype(float))
    ref = frame.groupby(["group:accent", "speaker"])["wrong"].agg(["mean", "size"])
    per = rows[rows["unit"] != "all"]
    assert list(zip(per["test_group"], per["unit"])) == list(ref.index)  # sorted, as before
    np.testing.assert_array_equal(per["value"], ref["mean"])
    np.testing.assert_array_equal(per["n"], ref["size"])
    ref = frame.groupby("group:accent")["wrong"].agg(["mean", "size"])
    grp = rows[rows["unit"] == "all"]
    assert list(grp["test_group"]) == list(ref.index)
    np.testing.assert_array_equal(grp["value"], ref["mean"])


def test_a_memory_mapped_layer_is_read_in_blocks_with_the_same_statistics(tmp_path):
    from probekit.probes.grid_stats import _mapping

    meta = _uneven_meta()
    X = FakeStore(meta, layers=("conv",)).X["conv"]
    np.save(tmp_path / "x.npy", X)
    mapped = np.asarray(np.load(tmp_path / "x.npy", mmap_mode="r"))
    assert _mapping(mapped) is not None and _mapping(X) is None
    y = meta["phone"].to_numpy()
    sp = content_split(meta, "group:accent", 0)
    wanted = {ts.name: (0, ts) for ts in equal_training_sets(meta, sp.train, "group:accent", 0)}
    a = set_statistics(mapped, y, meta, {0: sp.train}, wanted, block=5)
    b = set_statistics(X, y, meta, {0: sp.train}, wanted)
    for k in wanted:
        np.testing.assert_allclose(a[k].sum_xx, b[k].sum_xx, rtol=1e-12, atol=1e-9)
        np.testing.assert_array_equal(a[k].class_counts, b[k].class_counts)
    np.testing.assert_array_equal(np.asarray(mapped), X)  # dropped pages read back the same


def test_statistics_are_the_same_in_any_number_of_chunks_and_from_layer_rows(tmp_path, monkeypatch):
    """Per-segment statistics are added to the sets' a chunk at a time (one product with
    the membership matrix); the chunking and reading the layer from disk change nothing."""
    from probekit.probes import grid_stats
    from probekit.store.rows import LayerRows

    meta = _uneven_meta()
    X = FakeStore(meta, layers=("conv",)).X["conv"].astype(np.float16)
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    rows = LayerRows([(tmp_path / "x.npy", mm.offset, len(X))], X.shape[1], X.dtype)
    y = meta["phone"].to_numpy()
    splits = {s: content_split(meta, "group:accent", s) for s in range(2)}
    wanted = {(s, ts.name): (s, ts) for s in splits
              for ts in equal_training_sets(meta, splits[s].train, "group:accent", s, KINDS)}
    train = {s: sp.train for s, sp in splits.items()}
    whole = set_statistics(X, y, meta, train, wanted)
    monkeypatch.setattr(grid_stats, "CHUNK_BYTES", 1)  # one segment per chunk
    chunked = set_statistics(rows, y, meta, train, wanted, block=3)
    for k, (_, ts) in wanted.items():
        direct = X[ts.rows].astype(np.float64)
        for st in (whole[k], chunked[k]):
            assert st.n == len(ts.rows)
            np.testing.assert_allclose(st.sum_xx, direct.T @ direct, rtol=1e-12, atol=1e-9)
            np.testing.assert_allclose(st.sum_x, direct.sum(0), rtol=1e-12, atol=1e-9)
        np.testing.assert_array_equal(whole[k].class_counts, chunked[k].class_counts)


def test_float32_scores_near_a_tie_are_decided_in_float64(monkeypatch):
    """Rows whose two best scores are closer than float32 can tell apart take the float64
    argmax: classes 0 and 1 differ by 1e-7 in weight, below float32's resolution of the
    scores; with the bound turned off (ERR_UNITS = 0: only exact float32 ties re-scored)
    the float32 argmax, wrong for some rows, would be taken instead."""
    from probekit.probes import grid_scoring

    rng = np.random.default_rng(0)
    d, n = 32, 400
    X = rng.normal(size=(n, d)).astype(np.float16)
    w0 = rng.normal(size=d)
    direction = rng.normal(size=d)
    W = np.stack([w0, w0 + 1e-7 * direction, -w0]).T      # (d, 3): classes 0 and 1 nearly tie
    est = LDAProbe()
    est.coef_, est.intercept_, est.classes_ = W.T, np.zeros(3), np.array(["a", "b", "c"])
    exact = (X.astype(np.float64) @ W).argmax(1)
    y = np.array(["a", "b", "c"])[exact]
    tests, models = {0: np.arange(n)}, {"k": (0, est)}
    assert not stream_errors(X, y, tests, models)["k"].any()
    assert {0, 1} <= set(exact.tolist())                   # both sides of the near tie occur
    monkeypatch.setattr(grid_scoring, "ERR_UNITS", 0.0)
    assert stream_errors(X, y, tests, models)["k"].any()   # float32 alone gets some wrong


def test_the_float32_error_bound_covers_the_scoring_error():
    """The bound stream_errors re-scores within is larger than the float32 scores' actual
    error (here on rows of large norm, where the error is largest)."""
    from probekit.probes.grid_scoring import ERR_UNITS, F32_EPS

    rng = np.random.default_rng(1)
    d, k, n = 768, 40, 2000
    X = (rng.normal(size=(n, d)) * rng.uniform(1, 300, size=(n, 1))).astype(np.float16)
    W, b = rng.normal(size=(d, k)) * 1e-2, rng.normal(size=k) * 50
    exact = X.astype(np.float64) @ W + b
    S32 = X.astype(np.float32) @ W.astype(np.float32) + b.astype(np.float32)
    xnorm = np.linalg.norm(X.astype(np.float64), axis=1)
    bound = (d + 4) * F32_EPS * (xnorm * np.linalg.norm(W, axis=0).max() + np.abs(b).max())
    err = np.abs(S32 - exact).max(1)
    assert (err <= bound).all()                  # the bound holds without the safety factor
    assert (err > bound / 1e4).any()             # and is not vacuous
    assert ERR_UNITS >= 2                        # margins use twice it (two scores) at least


def test_the_shared_grid_reads_a_real_store_in_pieces_never_the_whole_layer(tmp_path, tiny_store,
                                                                            monkeypatch):
    """The LDA grid reads the layer through ``EmbeddingStore.rows`` (blocks across shards),
    never ``read`` (which concatenates every shard of the layer into memory)."""
    from probekit.store.store import EmbeddingStore

    monkeypatch.setattr(EmbeddingStore, "read",
                        lambda *a, **k: pytest.fail("the grid read a whole layer"))
    df = run_grid(tiny_store, "phone", tmp_path / "r", probes=("lda",), seeds=(0,),
                  train_sets=("single", "all"), progress=False)
    assert set(df["layer"]) == set(tiny_store.layers) and (df["metric"] == "error").all()


def test_sets_sum_their_own_rows_where_shared_segments_would_cost_more():
    """Ten sets over the same long run of rows share one segment; sets of a few rows each,
    every one its own short walk (a sentence-disjoint split), are summed directly."""
    from types import SimpleNamespace

    from probekit.probes.grid_stats import _direct_is_cheaper

    rows = np.arange(10_000)
    shared = {i: (0, SimpleNamespace(rows=rows)) for i in range(10)}
    assert not _direct_is_cheaper([(rows, [(0, 10_000, list(range(10)))])], shared)
    few = {i: (i, SimpleNamespace(rows=np.arange(40) + 40 * i)) for i in range(10)}
    walks = [(np.arange(20) + 20 * j, [(0, 10, [j // 2]), (10, 20, [j // 2])]) for j in range(20)]
    assert _direct_is_cheaper(walks, few)
