"""The analysis's replicates a block at a time: the same numbers as all at once, in bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from probekit.bias import resample
from probekit.bias.design import group_moments
from probekit.bias.metrics import group_statistics
from probekit.bias.resample import (map_null_replicates, map_split_bootstrap, null_replicates,
                                    replicate_blocks, split_speaker_bootstrap)
from probekit.bias.transfer import cross_group_transfer
from probekit.testing.simulate import simulate_results


def _rates(R=7, K=4, S=30, G=3, seed=0):
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0, 0.6, size=(R, K, S))
    rates[rng.uniform(size=rates.shape) < 0.4] = np.nan      # speakers not tested in a split
    return rates, np.sort(np.arange(S) % G), G


def _stats(x, codes, G):
    return group_statistics(x, None, codes, G, weighting="speakers")


@pytest.mark.parametrize("block", [1, 2 * 7 * 30 + 1, 5 * 7 * 30])
def test_blockwise_bootstrap_is_bit_identical_to_all_at_once(block):
    rates, codes, G = _rates()
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    whole = _stats(split_speaker_bootstrap(rates, codes, 41, rng_a), codes, G)
    parts = map_split_bootstrap(rates, codes, 41, rng_b, lambda x: _stats(x, codes, G),
                                block=block)
    assert whole.keys() == parts.keys()
    for k in whole:
        assert np.array_equal(whole[k], parts[k], equal_nan=True), k
    assert rng_a.integers(1 << 30) == rng_b.integers(1 << 30)   # the same draws were taken


@pytest.mark.parametrize("block", [1, 3 * 7 * 30])
def test_blockwise_nulls_are_bit_identical_to_all_at_once(block):
    rates, codes, G = _rates(seed=1)
    whole = null_replicates(rates, codes, 37, np.random.default_rng(2))
    parts = map_null_replicates(rates, codes, 37, np.random.default_rng(2),
                                lambda x: group_moments(x, codes, G), block=block)
    for kind, reps in whole.items():
        for a, b in zip(group_moments(reps, codes, G), parts[kind]):
            assert np.array_equal(a, b, equal_nan=True), kind


def test_blocks_never_hold_one_replicate_and_cover_all():
    for n, per, block in [(41, 10, 1), (41, 10, 200), (5, 1, 10 ** 9), (3, 4, 8)]:
        sl = replicate_blocks(n, per, block)
        sizes = [s.stop - s.start for s in sl]
        assert sum(sizes) == n and sl[0].start == 0 and all(
            a.stop == b.start for a, b in zip(sl, sl[1:]))
        assert min(sizes) >= 2 and max(sizes) * per <= max(block, 2 * per) + per


def test_transfer_bootstrap_memory_does_not_grow_with_replicates_times_rows(monkeypatch):
    """The transfer matrix's bootstrap once held every (replicate, row, speaker) value:
    here 400 x 30 rows x 96 speakers = 9 MB per array. Blockwise it stays far below."""
    df = simulate_results(n_groups=4, speakers_per_group=24, n_layers=3, seeds=range(3),
                          train_sets="full", test_speakers=1.0, random_state=3)
    monkeypatch.setattr(resample, "BLOCK_VALUES", 2 ** 14)
    full = 400 * 30 * 96 * 8
    tracemalloc.start()
    try:
        blocked = cross_group_transfer(df, n_boot=400, n_perm=50)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.5 * full, f"peak {peak / 2**20:.1f} MiB vs {full / 2**20:.1f} MiB at once"
    monkeypatch.setattr(resample, "BLOCK_VALUES", 2 ** 40)
    at_once = cross_group_transfer(df, n_boot=400, n_perm=50)
    for name in ("matrix", "own_vs_broad", "generalisation"):
        a, b = getattr(blocked, name), getattr(at_once, name)
        assert a.to_csv(index=False) == b.to_csv(index=False), name


def test_analysis_tables_do_not_depend_on_the_block_size(monkeypatch):
    """Every resampled table of ``analyze`` (layer curves, transfer, typing, decisions) is
    byte-identical whether the replicates go two at a time or all at once."""
    from probekit.bias.analysis import analyze

    df = simulate_results(n_groups=3, speakers_per_group=[4, 6, 9], n_layers=3, seeds=range(3),
                          train_sets="full", group_offset={"g1": 0.1}, random_state=5)
    out = {}
    for block in (2 ** 6, 2 ** 40):
        monkeypatch.setattr(resample, "BLOCK_VALUES", block)
        an = analyze(df, n_boot=40, n_perm=40, seed=1, with_counts=False)  # counts: no replicates
        out[block] = {k: t.to_csv(index=False) for k, t in an.tables.items()}
    assert out[2 ** 6].keys() == out[2 ** 40].keys() and "typing" in out[2 ** 6]
    for name, text in out[2 ** 6].items():
        assert text == out[2 ** 40][name], name
